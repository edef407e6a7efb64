from django.apps import AppConfig
from django.db.models.signals import post_save


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .models import User
        from .services import revoke_on_change

        post_save.connect(revoke_on_change, sender=User, dispatch_uid="accounts.revoke_on_change")
