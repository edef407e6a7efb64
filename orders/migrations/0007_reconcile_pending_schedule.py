"""The pending-order reconciler's periodic task, as a row operators edit in admin."""

import importlib

from django.db import migrations

# Every minute: an order whose broker answer never came is resolved well within
# ORDER_PENDING_TIMEOUT of going stale.
RECONCILE_SECONDS = 60
NAME = "Reconcile pending orders"

_schedules_changed = importlib.import_module("orders.migrations.0004_sync_schedules")._schedules_changed


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=RECONCILE_SECONDS, period="seconds")
    PeriodicTask.objects.update_or_create(
        name=NAME,
        defaults={
            "task": "orders.tasks.reconcile_pending_orders",
            "interval": interval,
            "enabled": True,
        },
    )
    _schedules_changed(apps)


def delete_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=NAME).delete()
    _schedules_changed(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0006_backfill_imported_created_at"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
