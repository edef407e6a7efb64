"""Create (or reset the password of) the demo trader and the admin; print their logins."""

import os
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.models import User
from accounts.services import ensure_paper_account


class Command(BaseCommand):
    help = "Create the demo trader and the admin for the embedded run and print their logins."

    def handle(self, *args, **options):
        trader, _ = User.objects.get_or_create(username=settings.DEMO_TRADER_USERNAME)
        trader.set_password(settings.DEMO_TRADER_PASSWORD)
        trader.save()
        ensure_paper_account(trader)

        admin_name = os.environ.get("DJANGO_SUPERUSER_USERNAME", "admin")
        admin_password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        admin, created = User.objects.get_or_create(
            username=admin_name, defaults={"is_staff": True, "is_superuser": True}
        )
        if admin_password or created:
            # Without DJANGO_SUPERUSER_PASSWORD a fresh admin gets a random one, shown once.
            admin_password = admin_password or secrets.token_urlsafe(12)
            admin.set_password(admin_password)
        admin.is_staff = admin.is_superuser = True
        admin.save()
        ensure_paper_account(admin)

        self.stdout.write("")
        self.stdout.write(f"  Demo trader: {trader.username} / {settings.DEMO_TRADER_PASSWORD}")
        shown = admin_password or "(unchanged; set DJANGO_SUPERUSER_PASSWORD to reset it)"
        self.stdout.write(f"  Admin:       {admin.username} / {shown}")
        self.stdout.write("")
