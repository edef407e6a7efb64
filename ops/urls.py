from django.urls import path

from . import views

app_name = "ops"
urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
    # Inside the admin's URL space, ahead of admin.site.urls (tradedesk.urls includes it first).
    path("admin/overview/", views.overview, name="overview"),
]
