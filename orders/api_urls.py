from django.urls import include, path

from . import api

# Order ids are integers: "orders/sync/" and any other word never reach the detail view, and a
# path that matches nothing gets the project's JSON 404.
urlpatterns = [
    path("orders/", api.OrderListCreateView.as_view(), name="api-orders"),
    path("orders/validate/", api.OrderValidateView.as_view(), name="api-order-validate"),
    path("orders/sync/", include("orders.sync.urls")),
    path("orders/<int:order_id>/", api.OrderDetailView.as_view(), name="api-order"),
    path(
        "orders/<int:order_id>/approve/", api.ApproveOrderView.as_view(), name="api-order-approve"
    ),
    path("orders/<int:order_id>/reject/", api.RejectOrderView.as_view(), name="api-order-reject"),
    path("order-templates/", api.OrderTemplateListCreateView.as_view(), name="api-templates"),
    path(
        "order-templates/<int:template_id>/",
        api.OrderTemplateDetailView.as_view(),
        name="api-template",
    ),
    path(
        "order-templates/<int:template_id>/place/",
        api.OrderTemplatePlaceView.as_view(),
        name="api-template-place",
    ),
    path("approvals/", api.ApprovalListView.as_view(), name="api-approvals"),
    path("account/", api.AccountView.as_view(), name="api-account"),
    path("positions/", api.PositionsView.as_view(), name="api-positions"),
    path("positions/history/", api.PositionHistoryView.as_view(), name="api-position-history"),
]
