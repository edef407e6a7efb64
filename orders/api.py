"""Order, account and position endpoints (thin: the logic is in services)."""

from __future__ import annotations

from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import generics, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import second_factor_verified
from accounts.selectors import broker_account_for
from accounts.services import broker_for
from tradedesk.broker import types
from tradedesk.broker.errors import OrderRejected

from . import selectors, services
from .filters import OrderFilter, PositionSnapshotFilter
from .models import Order, OrderEvent, PositionSnapshot
from .record import MIRRORED_FIELDS
from .validation import OrderInput

_DECIMAL = {"max_digits": 24, "decimal_places": 9, "required": False, "allow_null": True}


class RejectUnknownFields:
    """A serializer mixin: a key the endpoint doesn't know is a client error, not ignored."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)  # refuses anything but an object first
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {name: ["Unknown field."] for name in unknown}, code="unknown_field"
            )
        return value


class LegSerializer(serializers.Serializer):
    limit_price = serializers.DecimalField(**_DECIMAL)
    stop_price = serializers.DecimalField(**_DECIMAL)


class StrictLegSerializer(RejectUnknownFields, LegSerializer):
    pass


class OrderInputSerializer(serializers.Serializer):
    """Parses an order body; judging it is validate_order's job (codes, warnings)."""

    symbol = serializers.CharField(max_length=16)
    side = serializers.CharField(max_length=16)
    type = serializers.CharField(max_length=16)
    time_in_force = serializers.CharField(max_length=8, default="day")
    qty = serializers.DecimalField(**_DECIMAL)
    notional = serializers.DecimalField(**_DECIMAL)
    limit_price = serializers.DecimalField(**_DECIMAL)
    stop_price = serializers.DecimalField(**_DECIMAL)
    trail_price = serializers.DecimalField(**_DECIMAL)
    trail_percent = serializers.DecimalField(**_DECIMAL)
    extended_hours = serializers.BooleanField(default=False)
    client_order_id = serializers.CharField(
        max_length=128, required=False, allow_blank=True, default=""
    )
    order_class = serializers.CharField(max_length=8, default="simple")
    take_profit = LegSerializer(required=False, allow_null=True)
    stop_loss = LegSerializer(required=False, allow_null=True)
    broker_account = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=2**62
    )

    def to_order_input(self) -> OrderInput:
        data = dict(self.validated_data)
        data.pop("broker_account", None)
        data["symbol"] = data["symbol"].strip().upper()
        for leg in ("take_profit", "stop_loss"):
            if data.get(leg):
                data[leg] = types.LegRequest(**data[leg])
        return OrderInput(**data)


class OrderBodySerializer(RejectUnknownFields, OrderInputSerializer):
    """The API's order body: as the ticket's, but unknown keys are refused (a typo is not
    silently dropped)."""

    take_profit = StrictLegSerializer(required=False, allow_null=True)
    stop_loss = StrictLegSerializer(required=False, allow_null=True)


class ReplaceOrderSerializer(RejectUnknownFields, serializers.Serializer):
    """PATCH body: what Alpaca lets a replace change; at least one of them. Parsing only: the
    order it would become is judged by the gate (orders.services.replace_order)."""

    qty = serializers.DecimalField(**_DECIMAL)
    limit_price = serializers.DecimalField(**_DECIMAL)
    stop_price = serializers.DecimalField(**_DECIMAL)
    trail = serializers.DecimalField(**_DECIMAL)
    time_in_force = serializers.CharField(max_length=8, required=False)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        given = {name: value for name, value in attrs.items() if value is not None}
        if not given:
            raise serializers.ValidationError(
                f"Give at least one of: {', '.join(services.REPLACEABLE_FIELDS)}.",
                code="nothing_to_replace",
            )
        return given

    def to_replace_request(self) -> types.ReplaceRequest:
        return types.ReplaceRequest(**self.validated_data)


class IssueSerializer(serializers.Serializer):
    code = serializers.CharField()
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class OrderErrorsSerializer(serializers.Serializer):
    errors = IssueSerializer(many=True)
    warnings = IssueSerializer(many=True)


class VerdictSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    errors = IssueSerializer(many=True)
    warnings = IssueSerializer(many=True)
    recommendations = IssueSerializer(many=True)


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(required=False)


class OrderEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderEvent
        fields = ["event", "status", "filled_qty", "price", "qty", "source", "detail", "at"]


class OrderSerializer(serializers.ModelSerializer):
    class Meta:
        model = Order
        fields = [
            "id",
            "broker_account",
            "broker_order_id",
            *MIRRORED_FIELDS,
            "replaced_by",
            "replaces",
            "placed_via",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class OrderDetailSerializer(OrderSerializer):
    events = OrderEventSerializer(many=True, read_only=True)

    class Meta(OrderSerializer.Meta):
        fields = [*OrderSerializer.Meta.fields, "events"]
        read_only_fields = fields


class ReplacementSerializer(OrderDetailSerializer):
    """The new order of a replace, with the warnings it was placed with (as POST gives them:
    the API confirms warnings by sending the command)."""

    warnings = serializers.SerializerMethodField()

    class Meta(OrderDetailSerializer.Meta):
        fields = [*OrderDetailSerializer.Meta.fields, "warnings"]
        read_only_fields = fields

    @extend_schema_field(IssueSerializer(many=True))
    def get_warnings(self, order) -> list[dict]:
        return self.context.get("warnings", [])


class PlacementSerializer(serializers.Serializer):
    order = OrderDetailSerializer()
    warnings = IssueSerializer(many=True)
    recommendations = IssueSerializer(many=True)


class PendingSubmissionSerializer(ErrorSerializer):
    order = OrderSerializer()


def input_errors(errors: dict) -> dict:
    """DRF's serializer errors in the order error shape: a list of {code, field, message}."""
    flat = []
    for field_name, messages in errors.items():
        name = None if field_name == "non_field_errors" else field_name
        if isinstance(messages, dict):
            for nested in input_errors(messages)["errors"]:
                path = f"{name}.{nested['field']}" if nested["field"] else name
                flat.append(nested | {"field": path})
            continue
        for message in messages:
            flat.append(
                {
                    "code": getattr(message, "code", "invalid"),
                    "field": name,
                    "message": str(message),
                }
            )
    return {"errors": flat, "warnings": []}


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

    @extend_schema(
        request=OrderBodySerializer,
        responses={
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
        },
    )
    def post(self, request):
        parsed = OrderBodySerializer(data=request.data)
        if not parsed.is_valid():
            return Response(input_errors(parsed.errors), status=status.HTTP_400_BAD_REQUEST)
        account = broker_account_for(request.user, parsed.validated_data.get("broker_account"))
        try:
            placement = services.place_order(
                user=request.user,
                broker_account=account,
                order_input=parsed.to_order_input(),
                second_factor_verified=second_factor_verified(request),
            )
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
                "order": OrderDetailSerializer(placement.order).data,
                "warnings": verdict["warnings"],
                "recommendations": verdict["recommendations"],
            },
            status=status.HTTP_201_CREATED if placement.created else status.HTTP_200_OK,
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


class BrokerAccountQuery(serializers.Serializer):
    broker_account = serializers.IntegerField(required=False, min_value=1, max_value=2**62)


class AccountView(APIView):
    @extend_schema(
        responses=inline_serializer(
            "Account",
            {
                "broker_account": serializers.IntegerField(),
                "cash": serializers.DecimalField(24, 2),
                "buying_power": serializers.DecimalField(24, 2),
                "equity": serializers.DecimalField(24, 2),
                "status": serializers.CharField(),
            },
        )
    )
    def get(self, request):
        query = BrokerAccountQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        account = broker_account_for(request.user, query.validated_data.get("broker_account"))
        info = broker_for(account).get_account()
        return Response(
            {
                "broker_account": account.pk,
                "status": info.status,
                "currency": info.currency,
                "cash": str(info.cash),
                "buying_power": str(info.buying_power),
                "equity": str(info.equity),
                "last_equity": str(info.last_equity),
                "portfolio_value": str(info.portfolio_value),
                "long_market_value": str(info.long_market_value),
                "short_market_value": str(info.short_market_value),
            }
        )


class PositionSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    qty = serializers.DecimalField(24, 9)
    side = serializers.ChoiceField(choices=["long", "short"])
    avg_entry_price = serializers.DecimalField(24, 9)
    current_price = serializers.DecimalField(24, 9)
    market_value = serializers.DecimalField(24, 2)
    cost_basis = serializers.DecimalField(24, 2)
    unrealized_pl = serializers.DecimalField(24, 2)
    unrealized_plpc = serializers.DecimalField(24, 4)


class PositionsView(APIView):
    @extend_schema(parameters=[BrokerAccountQuery], responses=PositionSerializer(many=True))
    def get(self, request):
        query = BrokerAccountQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        account = broker_account_for(request.user, query.validated_data.get("broker_account"))
        positions = broker_for(account).list_positions()
        return Response(PositionSerializer(positions, many=True).data)


class PositionSnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = PositionSnapshot
        fields = [
            "broker_account",
            "symbol",
            "qty",
            "side",
            "avg_entry_price",
            "current_price",
            "market_value",
            "cost_basis",
            "unrealized_pl",
            "unrealized_plpc",
            "snapshot_at",
        ]
        read_only_fields = fields


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
