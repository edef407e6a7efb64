from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Registers the Celery tasks in every process: sync runs queue theirs by name.
        from . import tasks  # noqa: F401
