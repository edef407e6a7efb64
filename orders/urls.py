from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("orders/new/", views.order_ticket, name="order-ticket"),
    path("orders/<int:order_id>/", views.order_detail, name="order-detail"),
]
