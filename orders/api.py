"""Order, account and position endpoints (thin: the logic is in services)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from accounts.selectors import broker_account_for
from accounts.services import broker_for
from tradedesk.broker import types

from . import selectors, services
from .models import Order, OrderEvent
from .validation import OrderInput

_DECIMAL = {"max_digits": 24, "decimal_places": 9, "required": False, "allow_null": True}


class OrderPlacementThrottle(UserRateThrottle):
    scope = "orders"

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)


class LegSerializer(serializers.Serializer):
    limit_price = serializers.DecimalField(**_DECIMAL)
    stop_price = serializers.DecimalField(**_DECIMAL)


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
            "client_order_id",
            "symbol",
            "asset_class",
            "side",
            "type",
            "order_class",
            "time_in_force",
            "qty",
            "notional",
            "filled_qty",
            "filled_avg_price",
            "limit_price",
            "stop_price",
            "trail_price",
            "trail_percent",
            "hwm",
            "status",
            "extended_hours",
            "submitted_at",
            "filled_at",
            "canceled_at",
            "expired_at",
            "failed_at",
            "replaced_at",
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


def input_errors(errors: dict) -> dict:
    """DRF's serializer errors in the order error shape: a list of {code, field, message}."""
    flat = []
    for field_name, messages in errors.items():
        if isinstance(messages, dict):
            for nested in input_errors(messages)["errors"]:
                flat.append(nested | {"field": f"{field_name}.{nested['field']}"})
            continue
        for message in messages:
            flat.append(
                {
                    "code": getattr(message, "code", "invalid"),
                    "field": None if field_name == "non_field_errors" else field_name,
                    "message": str(message),
                }
            )
    return {"errors": flat, "warnings": []}


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
    throttle_classes = [OrderPlacementThrottle]

    def get_queryset(self):
        return selectors.orders_for(self.request.user)

    @extend_schema(request=OrderInputSerializer, responses={201: OrderDetailSerializer})
    def post(self, request):
        parsed = OrderInputSerializer(data=request.data)
        if not parsed.is_valid():
            return Response(input_errors(parsed.errors), status=status.HTTP_400_BAD_REQUEST)
        account = broker_account_for(request.user, parsed.validated_data.get("broker_account"))
        try:
            placement = services.place_order(
                user=request.user, broker_account=account, order_input=parsed.to_order_input()
            )
        except services.OrderInvalid as invalid:
            body = invalid.verdict.as_dict()
            body.pop("valid")
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        except services.IdempotencyConflict:
            return Response(
                {
                    "detail": "client_order_id is already used by a different order.",
                    "code": "client_order_id_conflict",
                },
                status=status.HTTP_409_CONFLICT,
            )
        verdict = placement.verdict.as_dict()
        return Response(
            {
                "order": OrderDetailSerializer(placement.order).data,
                "warnings": verdict["warnings"],
                "recommendations": verdict["recommendations"],
            },
            status=status.HTTP_201_CREATED if placement.created else status.HTTP_200_OK,
        )


class OrderDetailView(APIView):
    @extend_schema(responses=OrderDetailSerializer)
    def get(self, request, order_id: int):
        order = selectors.order_for(request.user, order_id)
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


class PositionsView(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        query = BrokerAccountQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        account = broker_account_for(request.user, query.validated_data.get("broker_account"))
        positions = broker_for(account).list_positions()
        return Response(
            [
                {
                    "symbol": p.symbol,
                    "qty": str(p.qty),
                    "side": p.side,
                    "avg_entry_price": str(p.avg_entry_price),
                    "current_price": str(p.current_price),
                    "market_value": str(p.market_value),
                    "cost_basis": str(p.cost_basis),
                    "unrealized_pl": str(p.unrealized_pl),
                    "unrealized_plpc": str(p.unrealized_plpc),
                }
                for p in positions
            ]
        )
