"""Market-data endpoints (thin: market.services does the work)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from tradedesk.broker.types import TIMEFRAMES
from tradedesk.symbols import parse_symbols

from . import services

MAX_BARS_SPAN = {
    "1Min": timedelta(days=7),
    "1Hour": timedelta(days=90),
    "1Day": timedelta(days=3650),
}


def _decimal():
    return serializers.DecimalField(max_digits=24, decimal_places=9)


class QuoteSerializer(serializers.Serializer):
    """Schema of one quote in responses (decimals as strings, time ISO 8601 UTC)."""

    symbol = serializers.CharField()
    bid_price = _decimal()
    bid_size = _decimal()
    ask_price = _decimal()
    ask_size = _decimal()
    timestamp = serializers.DateTimeField()


class LatestQuotesSerializer(serializers.Serializer):
    quotes = serializers.DictField(child=QuoteSerializer())


class BarSerializer(serializers.Serializer):
    timestamp = serializers.DateTimeField()
    open = _decimal()
    high = _decimal()
    low = _decimal()
    close = _decimal()
    volume = _decimal()


class BarsSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    timeframe = serializers.ChoiceField(choices=TIMEFRAMES)
    bars = BarSerializer(many=True)


class LatestQuotesView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("symbols", str, required=True)],
        responses=LatestQuotesSerializer,
    )
    def get(self, request):
        try:
            symbols = parse_symbols(request.query_params.get("symbols", ""))
        except ValueError as error:
            raise ValidationError({"symbols": [str(error)]}) from None
        quotes = services.latest_quotes(symbols)
        return Response(
            {"quotes": {symbol: services.quote_json(q) for symbol, q in quotes.items()}}
        )


class BarsQuery(serializers.Serializer):
    symbol = serializers.CharField(max_length=16)
    timeframe = serializers.ChoiceField(choices=TIMEFRAMES, default="1Min")
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)

    def validate_symbol(self, value: str) -> str:
        try:
            return parse_symbols(value, limit=1)[0]
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from None

    def validate(self, attrs):
        end = attrs.get("end") or timezone.now()
        start = attrs.get("start") or end - timedelta(hours=6)
        if start >= end:
            raise serializers.ValidationError({"start": "start must be before end."})
        if end - start > MAX_BARS_SPAN[attrs["timeframe"]]:
            raise serializers.ValidationError(
                {"start": "That range is too long for the timeframe."}
            )
        return attrs | {"start": start, "end": end}


class BarsView(APIView):
    @extend_schema(parameters=[BarsQuery], responses=BarsSerializer)
    def get(self, request):
        query = BarsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        bars = services.bars(data["symbol"], data["timeframe"], data["start"], data["end"])
        return Response(
            {
                "symbol": data["symbol"],
                "timeframe": data["timeframe"],
                "bars": [services.bar_json(bar) for bar in bars],
            }
        )
