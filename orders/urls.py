from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("orders/", views.order_history, name="order-history"),
    path("orders/export.csv", views.order_history_csv, name="order-history-csv"),
    path("orders/status/", views.order_statuses, name="order-statuses"),
    path("orders/new/", views.order_ticket, name="order-ticket"),
    path("orders/templates/", views.save_template, name="template-save"),
    path("orders/templates/<int:template_id>/place/", views.place_template, name="template-place"),
    path(
        "orders/templates/<int:template_id>/delete/",
        views.delete_template,
        name="template-delete",
    ),
    path("orders/<int:order_id>/", views.order_detail, name="order-detail"),
    path("orders/<int:order_id>/cancel/", views.cancel_order, name="order-cancel"),
    path("orders/<int:order_id>/replace/", views.replace_order, name="order-replace"),
    path("approvals/", views.approval_queue, name="approvals"),
    path("approvals/<int:order_id>/approve/", views.approve_order, name="approval-approve"),
    path("approvals/<int:order_id>/reject/", views.reject_order, name="approval-reject"),
    path("positions/history/", views.positions_history, name="positions-history"),
]
