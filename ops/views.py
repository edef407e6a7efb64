"""/metrics for Prometheus and the admin's overview page for staff (thin: ops.metrics and
ops.selectors do the work)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import metrics as desk_metrics
from . import selectors


@never_cache
@require_GET
def metrics(request):
    try:
        desk_metrics.check_access(request)
    except desk_metrics.Refusal as refusal:
        response = HttpResponse(refusal.message, status=refusal.status, content_type="text/plain")
        if refusal.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = desk_metrics.exposition(request.headers.get("Accept"))
    return HttpResponse(body, content_type=content_type)


@never_cache
@staff_member_required
@require_GET
def overview(request):
    """Halts, approvals, lost and pending orders, each account's last sync, the upstream."""
    context = {
        **admin.site.each_context(request),
        "title": "Desk overview",
        "overview": selectors.desk_overview(timezone.now()),
        "recent_hours": int(selectors.RECENT.total_seconds() // 3600),
    }
    return render(request, "ops/overview.html", context)
