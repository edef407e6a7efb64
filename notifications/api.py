"""/api/v1/notifications/ and /api/v1/webhook-endpoints/ (thin: logic is in services)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.api import OrderCursorPagination
from orders.serializers import RejectUnknownFields

from . import selectors, services
from .models import NOTICE_KINDS, Notification, WebhookDelivery, WebhookEndpoint


class NotificationSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="The page to see it on.")

    class Meta:
        model = Notification
        fields = ["id", "kind", "order", "title", "body", "detail", "url", "created_at", "read_at"]
        read_only_fields = fields

    def get_url(self, notification: Notification) -> str:
        return services.link_of(notification)


class PreferencesSerializer(RejectUnknownFields, serializers.Serializer):
    page = serializers.ListField(child=serializers.ChoiceField(NOTICE_KINDS), max_length=20)
    email = serializers.ListField(child=serializers.ChoiceField(NOTICE_KINDS), max_length=20)
    webhook = serializers.ListField(child=serializers.ChoiceField(NOTICE_KINDS), max_length=20)


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "notification",
            "attempt",
            "at",
            "status_code",
            "response_excerpt",
            "error",
            "duration_ms",
            "next_attempt_at",
            "outcome",
        ]
        read_only_fields = fields


class EndpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "active", "created_at"]
        read_only_fields = ["id", "created_at"]


class EndpointCreateSerializer(RejectUnknownFields, serializers.Serializer):
    url = serializers.CharField(max_length=500)


class EndpointChangeSerializer(RejectUnknownFields, serializers.Serializer):
    active = serializers.BooleanField()


class NotificationListView(generics.ListAPIView):
    queryset = Notification.objects.none()  # the schema's model; get_queryset needs a user
    serializer_class = NotificationSerializer
    pagination_class = OrderCursorPagination  # newest first, as the order history

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Notification.objects.none()
        return selectors.page_notifications(self.request.user)


class NotificationReadView(APIView):
    @extend_schema(request=None, responses=NotificationSerializer)
    def post(self, request, notification_pk: int):
        notification = selectors.notification_for(request.user, notification_pk)
        services.mark_read(request.user, [notification.pk])
        notification.refresh_from_db()
        return Response(NotificationSerializer(notification).data)


class PreferencesView(APIView):
    @extend_schema(responses=PreferencesSerializer)
    def get(self, request):
        return Response(services.preferences_of(request.user).chosen())

    @extend_schema(request=PreferencesSerializer, responses=PreferencesSerializer)
    def put(self, request):
        parsed = PreferencesSerializer(data=request.data)
        parsed.is_valid(raise_exception=True)
        prefs = services.save_preferences(request.user, parsed.validated_data)
        return Response(prefs.chosen())


def _refused(error: ValidationError) -> Response:
    return Response(
        {"errors": [{"code": "invalid_url", "message": m} for m in error.messages]},
        status=status.HTTP_400_BAD_REQUEST,
    )


class EndpointListView(APIView):
    @extend_schema(responses=EndpointSerializer(many=True))
    def get(self, request):
        return Response(EndpointSerializer(selectors.endpoints_for(request.user), many=True).data)

    @extend_schema(request=EndpointCreateSerializer, responses={201: EndpointSerializer})
    def post(self, request):
        """Add an endpoint; the answer carries its signing `secret`, shown this once."""
        parsed = EndpointCreateSerializer(data=request.data)
        parsed.is_valid(raise_exception=True)
        try:
            made = services.add_endpoint(request.user, parsed.validated_data["url"])
        except ValidationError as error:
            return _refused(error)
        body = EndpointSerializer(made.endpoint).data | {"secret": made.secret}
        return Response(body, status=status.HTTP_201_CREATED)


class EndpointDetailView(APIView):
    @extend_schema(responses=EndpointSerializer)
    def get(self, request, endpoint_pk: int):
        endpoint = selectors.endpoint_for(request.user, endpoint_pk)
        deliveries = selectors.deliveries_for(endpoint)[: selectors.DELIVERIES_SHOWN]
        return Response(
            EndpointSerializer(endpoint).data
            | {"deliveries": DeliverySerializer(deliveries, many=True).data}
        )

    @extend_schema(request=EndpointChangeSerializer, responses=EndpointSerializer)
    def patch(self, request, endpoint_pk: int):
        endpoint = selectors.endpoint_for(request.user, endpoint_pk)
        parsed = EndpointChangeSerializer(data=request.data)
        parsed.is_valid(raise_exception=True)
        services.set_endpoint_active(endpoint, parsed.validated_data["active"])
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, endpoint_pk: int):
        selectors.endpoint_for(request.user, endpoint_pk).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
