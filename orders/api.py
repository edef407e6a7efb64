"""Order, account and position endpoints (thin: the logic is in services)."""

from __future__ import annotations

from collections.abc import Callable

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
)
from rest_framework import generics, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import second_factor_verified
from accounts.selectors import broker_account_for
from tradedesk.broker.errors import OrderRejected

from . import approvals, selectors, services, templates
from .filters import OrderFilter, PositionSnapshotFilter
from .models import Order, OrderTemplate, PositionSnapshot
from .serializers import (
    AccountSerializer,
    ApprovalSerializer,
    BrokerAccountQuery,
    ErrorSerializer,
    OrderBodySerializer,
    OrderDetailSerializer,
    OrderErrorsSerializer,
    OrderSerializer,
    OrderTemplateBodySerializer,
    OrderTemplateSerializer,
    PendingSubmissionSerializer,
    PlacementSerializer,
    PositionSerializer,
    PositionSnapshotSerializer,
    RejectOrderSerializer,
    ReplacementSerializer,
    ReplaceOrderSerializer,
    TemplatePlacementSerializer,
    VerdictSerializer,
    input_errors,
    order_detail,
)


def refusal(invalid: services.OrderInvalid) -> Response:
    """The gate's refusal: 400 {errors, warnings}."""
    body = invalid.verdict.as_dict()
    return Response(
        {"errors": body["errors"], "warnings": body["warnings"]},
        status=status.HTTP_400_BAD_REQUEST,
    )


def _error(detail: str, code: str, http_status: int, **extra) -> Response:
    return Response({"detail": detail, "code": code, **extra}, status=http_status)


_ERRORS = {
    400: OpenApiResponse(OrderErrorsSerializer, description="Invalid body or invalid order."),
    404: OpenApiResponse(ErrorSerializer, description="Not one of the caller's orders."),
    422: OpenApiResponse(
        ErrorSerializer, description="The order is closed or the broker refused the change."
    ),
    429: OpenApiResponse(ErrorSerializer, description="Throttled or rate limited (Retry-After)."),
    503: OpenApiResponse(ErrorSerializer, description="The broker is unreachable."),
}


def _errors(*codes: int) -> dict:
    return {code: _ERRORS[code] for code in codes}


_PLACEMENT_RESPONSES = {
    201: OpenApiResponse(PlacementSerializer, description="Placed."),
    200: OpenApiResponse(
        PlacementSerializer, description="Same client_order_id and body: the first order."
    ),
    409: OpenApiResponse(
        ErrorSerializer, description="client_order_id already used by a different order."
    ),
    503: OpenApiResponse(
        PendingSubmissionSerializer,
        description="The broker did not answer; the order is kept pending and is "
        "resolved by its client_order_id (repeat the POST, never a new id).",
    ),
    **_errors(400, 404, 429),
}


def placement_answer(place: Callable[[], services.Placement]) -> Response:
    """Placing's answer, from whichever endpoint: 201 {order, warnings, recommendations}
    (200 for a repeat), or the gate's refusal, the client_order_id conflict, the pending
    submission."""
    try:
        placement = place()
    except services.OrderInvalid as invalid:
        return refusal(invalid)
    except services.IdempotencyConflict:
        return _error(
            "client_order_id is already used by a different order.",
            "client_order_id_conflict",
            status.HTTP_409_CONFLICT,
        )
    except services.SubmissionPending as pending:
        response = _error(
            f"The broker did not confirm the order ({pending.message}); it is kept pending. "
            "Repeat the request with the same client_order_id to learn its outcome.",
            "broker_unavailable",
            status.HTTP_503_SERVICE_UNAVAILABLE,
            order=OrderSerializer(pending.order).data,
        )
        response["Retry-After"] = "5"
        return response
    verdict = placement.verdict.as_dict()
    return Response(
        {
            "order": order_detail(placement.order),
            "warnings": verdict["warnings"],
            "recommendations": verdict["recommendations"],
        },
        status=status.HTTP_201_CREATED if placement.created else status.HTTP_200_OK,
    )


class OrderCursorPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    max_page_size = 500
    page_size_query_param = "page_size"


class OrderListCreateView(generics.ListAPIView):
    # The schema generator reads the model from here (get_queryset needs a real user).
    queryset = Order.objects.none()
    serializer_class = OrderSerializer
    pagination_class = OrderCursorPagination
    filterset_class = OrderFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Order.objects.none()
        return selectors.orders_for(self.request.user)

    @extend_schema(request=OrderBodySerializer, responses=_PLACEMENT_RESPONSES)
    def post(self, request):
        parsed = OrderBodySerializer(data=request.data)
        if not parsed.is_valid():
            return Response(input_errors(parsed.errors), status=status.HTTP_400_BAD_REQUEST)
        account = broker_account_for(request.user, parsed.validated_data.get("broker_account"))
        return placement_answer(
            lambda: services.place_order(
                user=request.user,
                broker_account=account,
                order_input=parsed.to_order_input(),
                second_factor_verified=second_factor_verified(request),
            )
        )


class OrderValidateView(APIView):
    @extend_schema(
        request=OrderBodySerializer,
        responses={200: VerdictSerializer, **_errors(400, 404, 503)},
        description="Judge an order exactly as placing it would, without submitting anything.",
    )
    def post(self, request):
        parsed = OrderBodySerializer(data=request.data)
        if not parsed.is_valid():
            return Response(input_errors(parsed.errors), status=status.HTTP_400_BAD_REQUEST)
        account = broker_account_for(request.user, parsed.validated_data.get("broker_account"))
        verdict = services.check_order(
            user=request.user, broker_account=account, order_input=parsed.to_order_input()
        )
        return Response(verdict.as_dict())


def _not_modifiable(error: services.OrderNotModifiable) -> Response:
    response = _error(error.message, error.code, status.HTTP_422_UNPROCESSABLE_ENTITY)
    if error.retry_after is not None:
        response["Retry-After"] = str(error.retry_after)
    return response


def _broker_refused(error: OrderRejected) -> Response:
    return _error(
        error.message,
        "broker_rejected",
        status.HTTP_422_UNPROCESSABLE_ENTITY,
        broker_code=None if error.code is None else str(error.code),
    )


class OrderDetailView(APIView):
    @extend_schema(responses={200: OrderDetailSerializer, **_errors(404)})
    def get(self, request, order_id: int):
        order = selectors.order_for(request.user, order_id)
        return Response(OrderDetailSerializer(order).data)

    @extend_schema(
        request=ReplaceOrderSerializer,
        responses={
            200: OpenApiResponse(
                ReplacementSerializer,
                description="The NEW order; the old one is now `replaced` (`replaced_by`). "
                "The order it becomes passes the same checks as a new order; its warnings "
                "are confirmed by sending the PATCH and come back in `warnings`.",
            ),
            **_errors(400, 404, 422, 429, 503),
        },
    )
    def patch(self, request, order_id: int):
        order = selectors.order_for(request.user, order_id)
        parsed = ReplaceOrderSerializer(data=request.data)
        if not parsed.is_valid():
            return Response(input_errors(parsed.errors), status=status.HTTP_400_BAD_REQUEST)
        try:
            replacement = services.replace_order(
                user=request.user,
                order=order,
                changes=parsed.to_replace_request(),
                source="api",
                actor=request.user,
                second_factor_verified=second_factor_verified(request),
            )
        except services.OrderInvalid as invalid:
            return refusal(invalid)
        except services.OrderNotModifiable as error:
            return _not_modifiable(error)
        except OrderRejected as error:
            return _broker_refused(error)
        warnings = replacement.verdict.as_dict()["warnings"]
        return Response(
            ReplacementSerializer(replacement.order, context={"warnings": warnings}).data
        )

    @extend_schema(
        request=None,
        responses={
            200: OpenApiResponse(
                OrderDetailSerializer,
                description="Cancel accepted: the order, `canceled` or `pending_cancel`.",
            ),
            **_errors(404, 422, 429, 503),
        },
    )
    def delete(self, request, order_id: int):
        order = selectors.order_for(request.user, order_id)
        try:
            order = services.cancel_order(
                user=request.user, order=order, source="api", actor=request.user
            )
        except services.OrderNotModifiable as error:
            return _not_modifiable(error)
        except OrderRejected as error:
            return _broker_refused(error)
        return Response(OrderDetailSerializer(order).data)


class AccountView(APIView):
    @extend_schema(parameters=[BrokerAccountQuery], responses=AccountSerializer)
    def get(self, request):
        query = BrokerAccountQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        account = broker_account_for(request.user, query.validated_data.get("broker_account"))
        state = {"broker_account": account, "account": selectors.account_at_broker(account)}
        return Response(AccountSerializer(state).data)


class PositionsView(APIView):
    @extend_schema(parameters=[BrokerAccountQuery], responses=PositionSerializer(many=True))
    def get(self, request):
        query = BrokerAccountQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        account = broker_account_for(request.user, query.validated_data.get("broker_account"))
        positions = selectors.positions_at_broker(account)
        return Response(PositionSerializer(positions, many=True).data)


class SnapshotCursorPagination(CursorPagination):
    ordering = ("-snapshot_at", "-id")
    page_size = 200
    max_page_size = 1000
    page_size_query_param = "page_size"


class PositionHistoryView(generics.ListAPIView):
    """The caller's position snapshots, newest first (?symbol=&after=&before=)."""

    serializer_class = PositionSnapshotSerializer
    pagination_class = SnapshotCursorPagination
    filterset_class = PositionSnapshotFilter
    queryset = PositionSnapshot.objects.none()  # the schema's model; requests use their own

    def get_queryset(self):
        return selectors.position_snapshots_for(self.request.user)


_DECISION_ERRORS = {
    403: OpenApiResponse(
        ErrorSerializer,
        description="`permission_denied` without the approve_order permission; `four_eyes` "
        "for one's own order.",
    ),
    404: OpenApiResponse(ErrorSerializer, description="No such order."),
    409: OpenApiResponse(
        ErrorSerializer, description="`not_pending_approval`: decided, canceled or expired."
    ),
}


def _may_decide(request) -> None:
    """Only staff holding the permission learn even whether an order exists."""
    user = request.user
    if not (user.is_staff and user.has_perm(approvals.PERMISSION)):
        raise PermissionDenied("Deciding approvals needs the approve_order permission.")


def _decision_refused(error: approvals.ApprovalForbidden | approvals.NotAwaitingApproval):
    if isinstance(error, approvals.ApprovalForbidden):
        return _error(error.message, error.code, status.HTTP_403_FORBIDDEN)
    return _error(
        error.message,
        "not_pending_approval",
        status.HTTP_409_CONFLICT,
        order_status=error.order.status,
    )


class ApproveOrderView(APIView):
    @extend_schema(
        request=None,
        responses={
            200: OpenApiResponse(
                OrderDetailSerializer, description="Approved and submitted to the broker."
            ),
            400: OpenApiResponse(
                OrderErrorsSerializer,
                description="The gate refused it now (a halt, buying power, …): the order "
                "ended rejected, the refusal recorded.",
            ),
            **_DECISION_ERRORS,
            **_errors(429, 503),
        },
        description="Approve an order waiting for approval (four eyes: not one's own).",
    )
    def post(self, request, order_id: int):
        _may_decide(request)
        order = get_object_or_404(Order, pk=order_id)
        try:
            placement = services.approve_order(order=order, operator=request.user, source="api")
        except (approvals.ApprovalForbidden, approvals.NotAwaitingApproval) as error:
            return _decision_refused(error)
        except services.OrderInvalid as invalid:
            return refusal(invalid)
        return Response(OrderDetailSerializer(placement.order).data)


class RejectOrderView(APIView):
    @extend_schema(
        request=RejectOrderSerializer,
        responses={
            200: OpenApiResponse(OrderDetailSerializer, description="Rejected."),
            400: OpenApiResponse(OrderErrorsSerializer, description="No reason, or too long."),
            **_DECISION_ERRORS,
        },
        description="Reject an order waiting for approval, with a reason.",
    )
    def post(self, request, order_id: int):
        _may_decide(request)
        order = get_object_or_404(Order, pk=order_id)
        parsed = RejectOrderSerializer(data=request.data)
        if not parsed.is_valid():
            return Response(input_errors(parsed.errors), status=status.HTTP_400_BAD_REQUEST)
        try:
            order = approvals.reject_order(
                order, request.user, parsed.validated_data["reason"], source="api"
            )
        except (approvals.ApprovalForbidden, approvals.NotAwaitingApproval) as error:
            return _decision_refused(error)
        return Response(OrderDetailSerializer(order).data)


class ApprovalListView(generics.ListAPIView):
    """Orders waiting for approval, oldest first (staff with the approve_order permission)."""

    queryset = Order.objects.none()
    serializer_class = ApprovalSerializer
    pagination_class = OrderCursorPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Order.objects.none()
        _may_decide(self.request)
        return selectors.awaiting_approval()


class TemplateCursorPagination(OrderCursorPagination):
    ordering = ("name", "id")


_TEMPLATE_ERRORS = {
    400: OpenApiResponse(
        OrderErrorsSerializer,
        description="Not well formed (a type, a name, a negative number, an unknown field, "
        "another's broker account, a name already used). Whether an order from it may be "
        "placed is judged when placing.",
    ),
    404: OpenApiResponse(ErrorSerializer, description="Not one of the caller's templates."),
}


def _template_refused(invalid: templates.TemplateInvalid) -> Response:
    return Response(
        {"errors": invalid.as_issues(), "warnings": []}, status=status.HTTP_400_BAD_REQUEST
    )


def _parsed_template(request, *, partial: bool) -> OrderTemplateBodySerializer:
    return OrderTemplateBodySerializer(
        data=request.data, partial=partial, context={"user": request.user}
    )


class OrderTemplateListCreateView(generics.ListAPIView):
    """The caller's order templates, by name."""

    queryset = OrderTemplate.objects.none()  # the schema's model; requests use their own
    serializer_class = OrderTemplateSerializer
    pagination_class = TemplateCursorPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return OrderTemplate.objects.none()
        return selectors.templates_for(self.request.user)

    @extend_schema(
        request=OrderTemplateBodySerializer,
        responses={201: OrderTemplateSerializer, 400: _TEMPLATE_ERRORS[400]},
        description="Save an order body as a named template (checked only for being well "
        "formed: limits and buying power are judged when placing from it).",
    )
    def post(self, request):
        parsed = _parsed_template(request, partial=False)
        if not parsed.is_valid():
            return Response(input_errors(parsed.errors), status=status.HTTP_400_BAD_REQUEST)
        try:
            template = templates.save_template(owner=request.user, **parsed.order_fields())
        except templates.TemplateInvalid as invalid:
            return _template_refused(invalid)
        return Response(OrderTemplateSerializer(template).data, status=status.HTTP_201_CREATED)


class OrderTemplateDetailView(APIView):
    @extend_schema(responses={200: OrderTemplateSerializer, 404: _TEMPLATE_ERRORS[404]})
    def get(self, request, template_id: int):
        template = selectors.template_for(request.user, template_id)
        return Response(OrderTemplateSerializer(template).data)

    @extend_schema(
        request=OrderTemplateBodySerializer,
        responses={200: OrderTemplateSerializer, **_TEMPLATE_ERRORS},
        description="Rewrite the template whole (fields not given take their defaults).",
    )
    def put(self, request, template_id: int):
        return self._update(request, template_id, partial=False)

    @extend_schema(
        request=OrderTemplateBodySerializer,
        responses={200: OrderTemplateSerializer, **_TEMPLATE_ERRORS},
        description="Change the fields given (rename, another account, other order fields).",
    )
    def patch(self, request, template_id: int):
        return self._update(request, template_id, partial=True)

    def _update(self, request, template_id: int, *, partial: bool) -> Response:
        template = selectors.template_for(request.user, template_id)
        parsed = _parsed_template(request, partial=partial)
        if not parsed.is_valid():
            return Response(input_errors(parsed.errors), status=status.HTTP_400_BAD_REQUEST)
        try:
            if partial:
                template = templates.update_template(template, **parsed.order_fields())
            else:
                template = templates.save_template(
                    owner=request.user, template=template, **parsed.order_fields()
                )
        except templates.TemplateInvalid as invalid:
            return _template_refused(invalid)
        return Response(OrderTemplateSerializer(template).data)

    @extend_schema(request=None, responses={204: None, 404: _TEMPLATE_ERRORS[404]})
    def delete(self, request, template_id: int):
        templates.delete_template(selectors.template_for(request.user, template_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class OrderTemplatePlaceView(APIView):
    @extend_schema(
        request=TemplatePlacementSerializer,
        responses=_PLACEMENT_RESPONSES,
        description="Place the template's order (optionally another qty or notional, a "
        "client_order_id): judged by the same gate and answered as POST /api/v1/orders/.",
    )
    def post(self, request, template_id: int):
        template = selectors.template_for(request.user, template_id)
        parsed = TemplatePlacementSerializer(data=request.data)
        if not parsed.is_valid():
            return Response(input_errors(parsed.errors), status=status.HTTP_400_BAD_REQUEST)
        return placement_answer(
            lambda: templates.place_from_template(
                template,
                **parsed.validated_data,
                source="api",
                second_factor_verified=second_factor_verified(request),
            )
        )
