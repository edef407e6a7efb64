from django.apps import AppConfig


class OpsConfig(AppConfig):
    """The operators' view of the running desk: /metrics and the admin's overview page."""

    name = "ops"
    default_auto_field = "django.db.models.BigAutoField"
