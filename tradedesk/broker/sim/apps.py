from django.apps import AppConfig


class SimConfig(AppConfig):
    name = "tradedesk.broker.sim"
    label = "sim"
    verbose_name = "Paper exchange"
    default_auto_field = "django.db.models.BigAutoField"
