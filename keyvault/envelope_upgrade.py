"""Bringing envelopes written in an older format (format 1, before secrets were bound to their
endpoint) to the current one.

Re-wrapping cannot do this: the binding is part of the data's associated data, so each secret
is opened and sealed again under a fresh data key. As with KEK rotation, each batch is its own
transaction and every row is written with a compare-and-swap on the envelope it was read with,
so the job is resumable (the rows still to do are those still in the old format) and a user who
rotates or edits a key meanwhile wins.
"""

from collections.abc import Iterator

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models.functions import Left

from keyvault import crypto, providers
from keyvault.crypto import CryptoError, Keyring
from keyvault.crypto.envelope import LEGACY_VERSIONS, SEPARATOR
from keyvault.models import SECRET_CONTEXT_FIELDS, ProviderKey
from keyvault.rotation import BatchResult, swap_envelopes
from keyvault.sealing import SealedSecret, secret_context

_LEGACY_PREFIXES = [f"kv{version}{SEPARATOR}" for version in sorted(LEGACY_VERSIONS)]
_PREFIX_LENGTH = max(len(prefix) for prefix in _LEGACY_PREFIXES)


def legacy_keys():
    """Keys whose envelope is in an older format (read off the envelope's text prefix; the
    secret field itself refuses lookups)."""
    return ProviderKey.objects.annotate(
        envelope_prefix=Left("secret", _PREFIX_LENGTH, output_field=models.CharField())
    ).filter(envelope_prefix__in=_LEGACY_PREFIXES)


def refused_endpoints(keys) -> list:
    """Ids of `keys` whose stored endpoint the current rules refuse (set before they existed):
    the operator should look at them before the binding makes them permanent."""
    refused = []
    for key in keys:
        if not providers.is_provider(key.provider):
            continue  # listed as failed: it cannot be opened at all
        _cleaned, problems = providers.check_config(key.provider_obj, key.config)
        if providers.routing_config(key.provider_obj, key.config).keys() & problems.keys():
            refused.append(key.pk)
    return refused


def upgrade_batch(keyring: Keyring, *, batch_size: int, after=None):
    """Re-seal up to `batch_size` legacy keys with ids above `after`; returns the result, the
    last id seen (None when nothing was left) and the ids whose endpoint the rules refuse."""
    keys = legacy_keys().only(*SECRET_CONTEXT_FIELDS).order_by("id")
    if after is not None:
        keys = keys.filter(id__gt=after)
    keys = list(keys[:batch_size])
    if not keys:
        return BatchResult(), None, []
    result = BatchResult()
    swaps = []
    for key in keys:
        try:
            new = crypto.reseal(key.secret.envelope, secret_context(key), keyring)
        except (CryptoError, ValidationError):  # ValidationError: a provider no longer known
            result.failed.append(key.pk)
            continue
        swaps.append((key.pk, key.secret, SealedSecret(new)))
    with transaction.atomic():
        result.rewrapped = swap_envelopes(swaps)
    result.skipped_concurrent = len(swaps) - result.rewrapped
    return result, keys[-1].pk, refused_endpoints(keys)


def upgrade_all(keyring: Keyring, *, batch_size: int) -> Iterator[tuple[BatchResult, list]]:
    """Batches until no legacy envelope is left (except those that fail to open)."""
    after = None
    while True:
        result, after, refused = upgrade_batch(keyring, batch_size=batch_size, after=after)
        if after is None:
            return
        yield result, refused
