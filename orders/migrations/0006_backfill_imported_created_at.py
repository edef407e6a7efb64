"""Orders brought in by sync were dated by when they were imported: date them by the broker.

The broker's created_at was never kept, but its submitted_at was (for Alpaca the two differ by
microseconds), so imported rows take that. Orders the desk placed keep their own time; the
broker's created_at of every row fills in with the next snapshot the sync or the stream sees.
"""

from django.db import migrations
from django.db.models import F


def date_imported_orders_by_the_broker(apps, schema_editor):
    Order = apps.get_model("orders", "Order")
    Order.objects.filter(placed_via="sync", submitted_at__isnull=False).update(
        created_at=F("submitted_at")
    )


class Migration(migrations.Migration):
    dependencies = [("orders", "0005_broker_times_unknown_values_sync_coalescing")]

    # Not reversible in substance (the import times are gone); going back leaves the dates.
    operations = [
        migrations.RunPython(date_imported_orders_by_the_broker, migrations.RunPython.noop)
    ]
