from django.core.management.base import CommandError

from core.management import ProvisioningCommand
from keyvault import events


class Command(ProvisioningCommand):
    help = (
        "Delete the event feed's events older than KEYVAULT_EVENTS_RETENTION_DAYS (at least 7). "
        "Run it daily (cron, a systemd timer); a client whose cursor is older takes a new snapshot."
    )

    def handle(self, **options):
        try:
            deleted = events.prune_events()
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        days = events.retention().days
        self.stdout.write(
            f"Pruned {deleted} event{'' if deleted == 1 else 's'} older than {days} days."
        )
