"""/api/v1/api-keys/: issue (the secret shown once), list and revoke gateway keys (thin)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import second_factor_verified
from accounts.selectors import broker_account_for
from orders.serializers import RejectUnknownFields

from . import selectors, services
from .models import ApiKey


class ApiKeySerializer(serializers.ModelSerializer):
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "label",
            "key_id",
            "broker_account",
            "ip_allowlist",
            "rate_limit",
            "max_notional",
            "active",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]
        read_only_fields = fields


class ApiKeyCreateSerializer(RejectUnknownFields, serializers.Serializer):
    label = serializers.CharField(max_length=100)
    broker_account = serializers.IntegerField(min_value=1, max_value=2**62, required=False)
    ip_allowlist = serializers.CharField(required=False, allow_blank=True, default="")
    rate_limit = serializers.CharField(required=False, allow_blank=True, default="", max_length=32)
    max_notional = serializers.DecimalField(
        max_digits=17, decimal_places=2, required=False, allow_null=True
    )


class IssuedKeySerializer(ApiKeySerializer):
    secret = serializers.CharField(read_only=True)

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "secret"]
        read_only_fields = fields


class ApiKeyListView(APIView):
    @extend_schema(responses=ApiKeySerializer(many=True))
    def get(self, request):
        return Response(ApiKeySerializer(selectors.api_keys_for(request.user), many=True).data)

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: IssuedKeySerializer})
    def post(self, request):
        parsed = ApiKeyCreateSerializer(data=request.data)
        parsed.is_valid(raise_exception=True)
        data = parsed.validated_data
        account = broker_account_for(request.user, data.get("broker_account"))
        try:
            issued = services.create_api_key(
                user=request.user,
                broker_account=account,
                label=data["label"],
                ip_allowlist=data["ip_allowlist"],
                rate_limit=data["rate_limit"],
                max_notional=data.get("max_notional"),
                second_factor_verified=second_factor_verified(request),
            )
        except ValidationError as error:
            return Response(
                {"errors": [{"code": error.code, "message": m} for m in error.messages]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        body = ApiKeySerializer(issued.api_key).data | {"secret": issued.secret}
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(APIView):
    @extend_schema(responses=ApiKeySerializer)
    def get(self, request, key_pk: int):
        return Response(ApiKeySerializer(selectors.api_key_for(request.user, key_pk)).data)

    @extend_schema(request=None, responses=ApiKeySerializer)
    def delete(self, request, key_pk: int):
        """Revoke: the key stops working at once; the record stays."""
        revoked = services.revoke_api_key(selectors.api_key_for(request.user, key_pk))
        return Response(ApiKeySerializer(revoked).data)
