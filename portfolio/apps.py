from django.apps import AppConfig


class PortfolioConfig(AppConfig):
    name = "portfolio"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # orders announces executions; it never imports this app (apps form floors).
        from orders.events import execution_recorded

        from . import receivers

        execution_recorded.connect(receivers.record_executions, dispatch_uid="portfolio-fills")
