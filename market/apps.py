from django.apps import AppConfig


class MarketConfig(AppConfig):
    name = "market"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.services import sessions_revoked

        from .consumers import close_user_streams

        sessions_revoked.connect(close_user_streams, dispatch_uid="market.close_user_streams")
