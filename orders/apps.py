from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_delete, post_save


def _halt_written(sender, **kwargs) -> None:
    # Set and lifted through orders.halts, but any write of a halt (the admin, a shell)
    # must reach every process's gate: now (this transaction reads its own write) and once
    # committed (a copy another process read meanwhile has the old rows).
    from .selectors import halts_changed

    halts_changed()
    transaction.on_commit(halts_changed)


class OrdersConfig(AppConfig):
    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Registers the Celery tasks in every process: sync runs queue theirs by name.
        from . import tasks  # noqa: F401
        from .models import TradingHalt

        post_save.connect(_halt_written, sender=TradingHalt, dispatch_uid="orders-halt-saved")
        post_delete.connect(_halt_written, sender=TradingHalt, dispatch_uid="orders-halt-deleted")
