"""Re-encrypt every stored broker secret with the first FIELD_ENCRYPTION_KEY (after a rotation)."""

from django.core.management.base import BaseCommand

from accounts.services import reencrypt_broker_secrets


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored broker secret with the first key of FIELD_ENCRYPTION_KEY; "
        "then older keys can leave the list."
    )

    def handle(self, *args, **options):
        rewritten, unreadable = reencrypt_broker_secrets()
        self.stdout.write(f"Re-encrypted {rewritten} broker secret(s).")
        if unreadable:
            self.stderr.write(
                f"{unreadable} secret(s) could not be decrypted with any configured key and were "
                "left as they are: restore the old key and run this again, or link those "
                "accounts again."
            )
