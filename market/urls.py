from django.urls import path

from . import views

urlpatterns = [
    path("watchlist/", views.watchlist_page, name="watchlist"),
    path("watchlist/add/", views.watchlist_add, name="watchlist-add"),
    path("watchlist/<str:symbol>/remove/", views.watchlist_remove, name="watchlist-remove"),
]
