import uuid

from django.core.management.base import CommandError
from django.db import DatabaseError

from core.management import database_error_message
from keyvault import services
from keyvault.crypto import CryptoError
from keyvault.management.progress import Progress
from keyvault.models import ProviderKey
from organizations.access import Access
from organizations.management.base import OrganizationCommand


class Command(OrganizationCommand):
    help = (
        "Give the chosen secrets a fresh data key and ciphertext (same secret, same version): "
        "the response to a suspected exposure of stored envelopes. Without --org or --key, "
        "every key."
    )

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group()
        target.add_argument("--org", metavar="SLUG")
        target.add_argument("--key", metavar="ID")

    def handle(self, *, org, key, **options):
        keys = ProviderKey.objects.select_related("organization").order_by("id")
        if org is not None:
            keys = keys.filter(organization=self.organization(org))
        if key is not None:
            try:
                keys = keys.filter(pk=uuid.UUID(key.strip()))
            except ValueError:
                raise CommandError(f"{key!r} is not a key id.") from None
            if not keys.exists():
                raise CommandError(f"No key with id {key!r}.")
        actor = Access.operator("manage.py rekey")
        progress = Progress(keys.count(), label="rekey")
        rekeyed, gone, failed = 0, 0, []
        database_error = None
        try:
            for provider_key in keys.iterator(chunk_size=500):
                try:
                    if services.provider_key_rekey(key=provider_key, actor=actor):
                        rekeyed += 1
                    else:
                        gone += 1
                except CryptoError:
                    failed.append(provider_key.pk)
                progress.advance(1)
        except DatabaseError as exc:
            # Each key is its own transaction: those done stay done, the one in flight rolled back.
            database_error = exc
        finally:
            progress.finish()
        self.stdout.write(f"Re-keyed {rekeyed} secrets; {gone} deleted meanwhile.")
        if database_error is not None:
            raise CommandError(
                f"Stopped after {rekeyed} secrets by a database error "
                f"({database_error_message(database_error)}); run rekey again."
            )
        if failed:
            raise CommandError(
                f"{len(failed)} secrets could not be opened and were left as they are: "
                + ", ".join(str(pk) for pk in failed[:20])
            )
