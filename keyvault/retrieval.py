"""Handing a decrypted secret to a proxy: revalidation, the disabled rule, accounting.

The ETag is derived from the key's id, secret version and last change, so it changes whenever
anything in the response would. A proxy that sends it back in `If-None-Match` gets "not
modified" without any decryption. Disabled keys are refused even on revalidation, so a proxy
with a cached copy learns at once that it must stop using it.
"""

import hashlib
from dataclasses import dataclass

from django.utils.http import parse_etags
from django.views.decorators.debug import sensitive_variables

from keyvault.models import ProviderKey
from keyvault.services import provider_key_check_reveal, provider_key_reveal
from keyvault.usage import recorder
from organizations.access import Access


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


def key_etag(key: ProviderKey, version=None) -> str:
    if version is not None:
        # A kept version never changes: its number and row are all its answer depends on
        # besides the key's settings.
        material = f"{key.pk}:{version.number}:{version.pk}:{key.updated_at.isoformat()}".encode()
    else:
        material = f"{key.pk}:{key.version}:{key.updated_at.isoformat()}".encode()
    return f'"{hashlib.sha256(material).hexdigest()[:32]}"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = parse_etags(if_none_match)
    return "*" in tags or etag in tags or f"W/{etag}" in tags


@sensitive_variables()
def retrieve_secret(
    *, actor: Access, key: ProviderKey, if_none_match: str | None = None, version=None
):
    """The key's secret for a proxy token, or "not modified" when `if_none_match` is current;
    with `version` (a kept `SecretVersion` of the key), that older secret.

    Authorized as a reveal even when nothing is decrypted: a 304 also tells the caller what
    the current secret is (the one it holds).
    """
    etag = key_etag(key, version)
    if _matches(if_none_match, etag):
        provider_key_check_reveal(key=key, actor=actor)
        secret = None
    else:
        secret = provider_key_reveal(key=key, actor=actor, version=version)
    recorder.record_secret_retrieval(actor.token.pk, key.pk)
    return SecretRetrieval(key=key, etag=etag, secret=secret)
