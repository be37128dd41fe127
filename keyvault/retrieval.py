"""Handing decrypted secrets to a proxy: revalidation, the disabled rule, accounting; one key
(`retrieve_secret`) or every enabled key of the organization (`retrieve_snapshot`).

The ETag is derived from the key's id, secret version and last change, so it changes whenever
anything in the response would. A proxy that sends it back in `If-None-Match` gets "not
modified" without any decryption. Disabled keys are refused even on revalidation, so a proxy
with a cached copy learns at once that it must stop using it.
"""

import hashlib
import logging
from dataclasses import dataclass, field

from django.utils.http import parse_etags
from django.views.decorators.debug import sensitive_variables

from keyvault import events
from keyvault.crypto import CryptoError
from keyvault.models import ProviderKey
from keyvault.services import provider_key_check_reveal, provider_key_reveal
from keyvault.usage import recorder
from organizations.access import Access
from organizations.authorization import authorize
from organizations.permissions import Action

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SecretRetrieval:
    key: ProviderKey
    etag: str
    secret: str | None  # None when the caller's copy is current

    @property
    def not_modified(self) -> bool:
        return self.secret is None

    def __repr__(self):
        return f"SecretRetrieval(key={self.key.pk}, etag={self.etag}, secret=<hidden>)"


def key_etag(key: ProviderKey) -> str:
    material = f"{key.pk}:{key.version}:{key.updated_at.isoformat()}".encode()
    return f'"{hashlib.sha256(material).hexdigest()[:32]}"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = parse_etags(if_none_match)
    return "*" in tags or etag in tags or f"W/{etag}" in tags


@sensitive_variables()
def retrieve_secret(*, actor: Access, key: ProviderKey, if_none_match: str | None = None):
    """The key's secret for a proxy token, or "not modified" when `if_none_match` is current.

    Authorized as a reveal even when nothing is decrypted: a 304 also tells the caller what
    the current secret is (the one it holds).
    """
    etag = key_etag(key)
    if _matches(if_none_match, etag):
        provider_key_check_reveal(key=key, actor=actor)
        secret = None
    else:
        secret = provider_key_reveal(key=key, actor=actor)
    recorder.record_secret_retrieval(actor.token.pk, key.pk)
    return SecretRetrieval(key=key, etag=etag, secret=secret)


@dataclass(frozen=True)
class Snapshot:
    cursor: int
    # (key, secret) for every key that opened, in the order of the key list.
    keys: list = field(repr=False)
    # (key id, error code) for the keys whose stored value failed its integrity check.
    unavailable: list

    def __repr__(self):
        return (
            f"Snapshot(cursor={self.cursor}, keys={len(self.keys)}, "
            f"unavailable={len(self.unavailable)}, secrets=<hidden>)"
        )


@sensitive_variables()
def retrieve_snapshot(*, actor: Access, provider: str | None = None) -> Snapshot:
    """Every enabled key of the caller's organization (of `provider` if given) with its secret,
    and the feed's cursor they are current at (`keyvault.events.snapshot_keys`).

    Each secret is a retrieval like `retrieve_secret`'s: authorized and accounted per key. The
    keys are read under the feed's lock, decrypted after it is let go. A key whose stored value
    fails its integrity check is left out (listed as unavailable, logged by the service): one
    damaged row must not keep every proxy of the organization from starting.
    """
    organization_id = actor.organization_id
    authorize(actor, Action.KEY_REVEAL, organization_id)
    cursor, keys = events.snapshot_keys(organization_id=organization_id, provider=provider)
    opened, unavailable = [], []
    for key in keys:
        try:
            secret = provider_key_reveal(key=key, actor=actor)
        except CryptoError as exc:
            unavailable.append((key.pk, exc.code))
            continue
        recorder.record_secret_retrieval(actor.token.pk, key.pk)
        opened.append((key, secret))
    return Snapshot(cursor=cursor, keys=opened, unavailable=unavailable)
