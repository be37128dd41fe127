from django.core.management.base import CommandError

from core.management import ProvisioningCommand
from keyvault.crypto import CryptoError
from keyvault.crypto.keyring import validate_kek_id
from keyvault.crypto.loading import new_kek_line


class Command(ProvisioningCommand):
    help = "Print a new key-encryption key as an `id:base64key` line for KEYVAULT_KEKS."
    requires_system_checks = []  # Must work before any KEK is configured.

    def add_arguments(self, parser):
        parser.add_argument("--id", dest="kek_id", help="KEK id (default: kek-<date>-<random>).")

    def handle(self, *, kek_id, **options):
        try:
            if kek_id is not None:
                # An explicit but empty `--id ""` is a mistake, not a request for the default.
                validate_kek_id(kek_id)
            self.stdout.write(new_kek_line(kek_id))
        except CryptoError as exc:
            raise CommandError(str(exc)) from None
