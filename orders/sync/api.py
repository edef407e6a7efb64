"""POST /api/v1/orders/sync/ and GET /api/v1/orders/sync/<task_id>/ (thin: see orders.sync.runs)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import broker_account_for

from ..models import SyncRun
from ..serializers import input_errors
from . import runs, selectors


class SyncRequestSerializer(serializers.Serializer):
    broker_account = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=2**62
    )


class SyncRunSerializer(serializers.ModelSerializer):
    task_id = serializers.UUIDField(source="id", read_only=True)

    class Meta:
        model = SyncRun
        fields = [
            "task_id",
            "broker_account",
            "trigger",
            "status",
            "created",
            "updated",
            "unchanged",
            "error",
            "queued_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class SyncView(APIView):
    @extend_schema(
        request=SyncRequestSerializer,
        responses={202: SyncRunSerializer},
        description="Queue a sync, or answer the one already queued or running for the same "
        "accounts (coalesced). Rate limited per user (429 with Retry-After).",
    )
    def post(self, request):
        parsed = SyncRequestSerializer(data=request.data)
        if not parsed.is_valid():
            return Response(input_errors(parsed.errors), status=status.HTTP_400_BAD_REQUEST)
        account_id = parsed.validated_data.get("broker_account")
        account = None if account_id is None else broker_account_for(request.user, account_id)
        try:
            run = runs.request_sync(user=request.user, broker_account=account, trigger="api")
        except runs.SyncQueueUnavailable:
            return Response(
                {"detail": "The sync queue is unavailable; try again shortly.", "code": "busy"},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        return Response(SyncRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class SyncRunView(APIView):
    @extend_schema(responses=SyncRunSerializer)
    def get(self, request, task_id: str):
        run = selectors.sync_run_for(request.user, task_id)
        return Response(SyncRunSerializer(run).data)
