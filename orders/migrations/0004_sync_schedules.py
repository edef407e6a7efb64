"""The periodic tasks of the sync, snapshots and paper matching, as rows operators edit in admin."""

from django.conf import settings
from django.db import migrations
from django.utils import timezone

# The paper exchange matches resting orders this often (the stream process also does).
PAPER_MATCH_SECONDS = 5


def _schedules() -> list[tuple[str, str, int]]:
    """(name, task, every seconds)"""
    return [
        ("Sync orders from brokers", "orders.tasks.sync_all_accounts", settings.ORDER_SYNC_INTERVAL),
        (
            "Snapshot positions",
            "orders.tasks.snapshot_positions",
            settings.POSITION_SNAPSHOT_INTERVAL,
        ),
        ("Match paper-exchange orders", "orders.tasks.match_paper_orders", PAPER_MATCH_SECONDS),
    ]


def _schedules_changed(apps):
    # The database scheduler reloads its tasks when this timestamp moves.
    apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()}
    )


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
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, _, _ in _schedules()]).delete()
    IntervalSchedule.objects.filter(
        period="seconds",
        every__in=[seconds for _, _, seconds in _schedules()],
        periodictask__isnull=True,
    ).delete()
    _schedules_changed(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0003_sync_runs"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, delete_schedules)]
