"""The portfolio's periodic tasks, as rows operators edit in admin."""

import importlib

from django.conf import settings
from django.db import migrations

# Roll-ups run hourly: a year of 5-minute snapshots stays at hourly, then daily, rows.
ROLL_UP_SECONDS = 3600

_schedules_changed = importlib.import_module("orders.migrations.0004_sync_schedules")._schedules_changed


def _schedules() -> list[tuple[str, str, int]]:
    """(name, task, every seconds)"""
    return [
        (
            "Snapshot account equity",
            "portfolio.tasks.snapshot_accounts",
            settings.POSITION_SNAPSHOT_INTERVAL,
        ),
        ("Sync missed fills", "portfolio.tasks.sync_fills", settings.ORDER_SYNC_INTERVAL),
        ("Roll up account snapshots", "portfolio.tasks.roll_up_snapshots", ROLL_UP_SECONDS),
    ]


def create_schedules(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds in _schedules():
        interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.update_or_create(
            name=name, defaults={"task": task, "interval": interval, "enabled": True}
        )
    _schedules_changed(apps)


def delete_schedules(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, _, _ in _schedules()]).delete()
    _schedules_changed(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("portfolio", "0001_initial"),
        ("orders", "0007_reconcile_pending_schedule"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, delete_schedules)]
