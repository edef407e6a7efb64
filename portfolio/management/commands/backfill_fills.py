"""Record the Fill rows of orders placed before the portfolio app kept them."""

from django.core.management.base import BaseCommand

from accounts.models import BrokerAccount
from portfolio import services
from tradedesk.broker.errors import BrokerError


class Command(BaseCommand):
    help = (
        "Fills from the execution events already recorded, then from each active account's "
        "broker activity log (every execution it lists). Safe to run again: each once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-broker", action="store_true", help="Only the recorded events.")

    def handle(self, *args, no_broker: bool = False, **options):
        recorded = services.record_fills_from_events(source="backfill")
        self.stdout.write(f"{recorded} fills from recorded executions")
        if no_broker:
            return
        for account in BrokerAccount.objects.filter(is_active=True):
            try:
                count = services.sync_fills(broker_account=account, full=True)
            except BrokerError as failure:
                self.stderr.write(f"account {account.pk}: {failure}")
                continue
            self.stdout.write(f"account {account.pk}: {count} fills from the broker's activities")
        services.link_fills_to_orders()
