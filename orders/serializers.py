"""The order API's serializers: request bodies parsed, answers shaped (the schema's types)."""

from __future__ import annotations

from datetime import datetime

from django.utils.functional import cached_property
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject

from accounts.models import BrokerAccount
from accounts.selectors import active_broker_accounts
from tradedesk.broker import types

from . import approvals
from .approvals import REASON_MAX
from .models import (
    ORDER_TERMS,
    TEMPLATE_NAME_MAX,
    Order,
    OrderEvent,
    OrderTemplate,
    PositionSnapshot,
)
from .record import MIRRORED_FIELDS
from .services import REPLACEABLE_FIELDS
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


class FieldsBuiltOnce:
    """A serializer mixin: the fields are built once per class and process, not per instance
    (DRF deep-copies and binds every declared field for each one: most of parsing an order
    body). The shared fields stay bound to the first instance, and a field reads its
    serializer's `partial` and `context` through that binding: an instance given either
    builds its own. The serializer's own validate_* methods run on each instance."""

    @property
    def fields(self):
        if self.partial or self._context:
            return super().fields
        cls = type(self)
        if "_fields_built_once" not in cls.__dict__:
            cls._fields_built_once = super().fields
        return cls._fields_built_once


def _client_order_id() -> serializers.CharField:
    return serializers.CharField(max_length=128, required=False, allow_blank=True, default="")


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
    client_order_id = _client_order_id()
    order_class = serializers.CharField(max_length=8, default="simple")
    take_profit = LegSerializer(required=False, allow_null=True)
    stop_loss = LegSerializer(required=False, allow_null=True)
    broker_account = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=2**62
    )

    def order_fields(self) -> dict:
        """The fields given, the order's as OrderInput takes them (symbol upper-cased, legs
        as LegRequest)."""
        data = dict(self.validated_data)
        if "symbol" in data:
            data["symbol"] = data["symbol"].strip().upper()
        for leg in ("take_profit", "stop_loss"):
            if data.get(leg):
                data[leg] = types.LegRequest(**data[leg])
        return data

    def to_order_input(self) -> OrderInput:
        data = self.order_fields()
        data.pop("broker_account", None)
        return OrderInput(**data)


class OrderBodySerializer(FieldsBuiltOnce, RejectUnknownFields, OrderInputSerializer):
    """The API's order body: as the ticket's, but unknown keys are refused (a typo is not
    silently dropped)."""

    take_profit = StrictLegSerializer(required=False, allow_null=True)
    stop_loss = StrictLegSerializer(required=False, allow_null=True)


class OrderTemplateBodySerializer(OrderBodySerializer):
    """A template's body: an order's (unknown keys refused) with a name and without a
    client_order_id (each placement has its own). Parsing only: whether it is well formed is
    OrderTemplate's to say, whether it may be placed the gate's, when it is."""

    name = serializers.CharField(max_length=TEMPLATE_NAME_MAX)
    client_order_id = None

    def validate_broker_account(self, value: int | None) -> BrokerAccount | None:
        if value is None:
            return None
        account = active_broker_accounts(self.context["user"]).filter(pk=value).first()
        if account is None:
            raise serializers.ValidationError("No such broker account.", code="not_owner")
        return account


class OrderTemplateSerializer(serializers.ModelSerializer):
    take_profit = serializers.SerializerMethodField()
    stop_loss = serializers.SerializerMethodField()

    class Meta:
        model = OrderTemplate
        fields = [
            "id",
            "name",
            "broker_account",
            *ORDER_TERMS,
            "take_profit",
            "stop_loss",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(LegSerializer(allow_null=True))
    def get_take_profit(self, template) -> dict | None:
        return _leg(template.order_input().take_profit)

    @extend_schema_field(LegSerializer(allow_null=True))
    def get_stop_loss(self, template) -> dict | None:
        return _leg(template.order_input().stop_loss)


def _leg(leg: types.LegRequest | None) -> dict | None:
    return None if leg is None else LegSerializer(leg).data


class TemplatePlacementSerializer(RejectUnknownFields, serializers.Serializer):
    """What placing from a template may change: the quantity (qty or notional) and the
    client_order_id."""

    qty = serializers.DecimalField(**_DECIMAL)
    notional = serializers.DecimalField(**_DECIMAL)
    client_order_id = _client_order_id()


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
                f"Give at least one of: {', '.join(REPLACEABLE_FIELDS)}.",
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


class ColumnsRead:
    """A ModelSerializer mixin: a field that shows one of the model's own columns (its
    source its name) reads it with getattr, not through DRF's generic look-up (mappings,
    callables, dotted sources: a third of an order reply's cost); any other field
    (relations, methods, nested serializers) is read by DRF's. What a value becomes is DRF's
    to_representation, None kept as None."""

    @cached_property
    def _reads(self) -> list[tuple[serializers.Field, str | None]]:
        meta = self.Meta.model._meta
        columns = {field.name for field in meta.concrete_fields if not field.is_relation}
        return [
            (field, field.source if field.source in columns else None)
            for field in self._readable_fields
        ]

    def to_representation(self, instance) -> dict:
        shown = {}
        for field, column in self._reads:
            if column is not None:
                value = plain = getattr(instance, column)
            else:
                try:
                    value = field.get_attribute(instance)
                except SkipField:
                    continue
                plain = value.pk if isinstance(value, PKOnlyObject) else value
            shown[field.field_name] = None if plain is None else field.to_representation(value)
        return shown


class OrderEventSerializer(ColumnsRead, serializers.ModelSerializer):
    class Meta:
        model = OrderEvent
        fields = ["event", "status", "filled_qty", "price", "qty", "source", "detail", "at"]


class OrderSerializer(ColumnsRead, serializers.ModelSerializer):
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


_ORDER_DETAIL = OrderDetailSerializer()


def order_detail(order: Order) -> dict:
    """OrderDetailSerializer(order).data, from fields built once per process: DRF builds a
    serializer's fields for each instance (about 35 here, a millisecond per reply)."""
    return _ORDER_DETAIL.to_representation(order)


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


class BrokerAccountQuery(serializers.Serializer):
    broker_account = serializers.IntegerField(required=False, min_value=1, max_value=2**62)


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


def _broker_amount(source: str) -> serializers.DecimalField:
    # Money as the broker states it (Alpaca's "122086.5" stays so; no rounding, no padding).
    return serializers.DecimalField(max_digits=None, decimal_places=None, source=source)


class AccountSerializer(serializers.Serializer):
    """The account at the broker, as GET /api/v1/account/ answers it."""

    broker_account = serializers.IntegerField(source="broker_account.pk")
    status = serializers.CharField(source="account.status")
    currency = serializers.CharField(source="account.currency")
    cash = _broker_amount("account.cash")
    buying_power = _broker_amount("account.buying_power")
    equity = _broker_amount("account.equity")
    last_equity = _broker_amount("account.last_equity")
    portfolio_value = _broker_amount("account.portfolio_value")
    long_market_value = _broker_amount("account.long_market_value")
    short_market_value = _broker_amount("account.short_market_value")


class RejectOrderSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=REASON_MAX, allow_blank=False, trim_whitespace=True)


class ApprovalSerializer(OrderSerializer):
    """An order of the approval queue: who placed it, its value and when it expires."""

    trader = serializers.CharField(source="user.username", read_only=True)
    requested_notional = serializers.SerializerMethodField()
    approval_expires_at = serializers.SerializerMethodField()

    class Meta(OrderSerializer.Meta):
        fields = [
            *OrderSerializer.Meta.fields,
            "trader",
            "requested_notional",
            "approval_expires_at",
        ]
        read_only_fields = fields

    def get_requested_notional(self, order) -> str | None:
        return approvals.requested(order).get("notional")

    def get_approval_expires_at(self, order) -> datetime:
        return approvals.expires_at(order)
