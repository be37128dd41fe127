"""Previous secrets of a provider key: kept by every rotation, dropped beyond the retention.

A rotation (or a rollback, which is one) calls `keep_version` inside its transaction, with the
key's row locked and the secret it replaces already opened (it has to be, to check the row is
intact): that secret is sealed again, under a fresh data key, to a `SecretVersion` row bound to
the key, its version number and the routing settings it was sent to. Copying the key's own
envelope would not do: it is bound to the key's row, and sharing one data key between two rows
would make a re-wrap of one of them a re-wrap of both.

The key keeps `KEYVAULT_SECRET_VERSIONS_KEPT` versions, its current one included; older ones
are deleted by the rotation that pushes them out (a lower setting takes effect on each key's
next rotation). Deleting the key deletes its versions (the foreign key cascades).
"""

from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from keyvault.locking import lock_versions_of
from keyvault.models import ProviderKey, SecretVersion


def versions_kept() -> int:
    """How many versions a key keeps, its current one included (at least one)."""
    return max(1, int(getattr(settings, "KEYVAULT_SECRET_VERSIONS_KEPT", 10)))


@sensitive_variables()
def keep_version(key: ProviderKey, plaintext: str, *, routing: dict) -> None:
    """Keep `plaintext`, the locked `key`'s current secret, as its version `key.version`, about
    to be replaced by version `key.version + 1`; drop the versions that then fall out of the
    retention. The caller holds the key's row lock and its transaction."""
    kept = versions_kept()
    newest = key.version + 1
    lock_versions_of([key.pk])
    # Every version at or below this number falls out once `newest` is current.
    SecretVersion.objects.filter(key=key, number__lte=newest - kept).delete()
    if kept == 1:
        return
    # A row with this number may survive from before a restore of the key's row: replaced.
    SecretVersion.objects.filter(key=key, number=key.version).delete()
    version = SecretVersion(
        key=key,
        organization_id=key.organization_id,
        number=key.version,
        provider=key.provider,
        routing=routing,
        secret_hint=key.secret_hint,
        created_at=key.rotated_at or key.created_at,
        # The first version is the creator's; later ones their rotator's, when it is known.
        created_by_id=key.rotated_by_id if key.version > 1 else key.created_by_id,
    )
    version.secret = plaintext
    version.save(force_insert=True)
