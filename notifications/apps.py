from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # orders announces notices; it never imports this app (apps form floors).
        from orders.events import notice

        from . import services, tasks  # noqa: F401  (tasks: registered for services' look-ups)

        notice.connect(services.deliver_notices, dispatch_uid="notifications-notices")
