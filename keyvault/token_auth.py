"""From the token a proxy presents to its row: the one place that decides whether a proxy
token authenticates.

What protects a token is its 256 random bits and that only its SHA-256 digest is stored: the
row is found by that digest through a unique index, so the token itself is never compared with
anything, and an attacker who could time the lookup would learn about digests, not tokens. The
shape is checked first, so arbitrary input never reaches the database.
"""

from django.views.decorators.debug import sensitive_variables

from core.tokens import token_digest
from keyvault.models import ProxyToken
from keyvault.tokens import looks_like_token

_REFUSALS = {
    "revoked": "The token has been revoked.",
    "expired": "The token has expired.",
}


class TokenRefused(Exception):
    """The token does not authenticate; the message says why, without repeating it."""


@sensitive_variables()
def proxy_token_digest(raw: str) -> str:
    """The digest a well-formed token is looked up by; `TokenRefused` for a malformed one."""
    if not isinstance(raw, str) or not looks_like_token(raw):
        raise TokenRefused("The token is malformed.")
    return token_digest(raw)


def proxy_token_accept(token: ProxyToken | None) -> ProxyToken:
    """The token found by digest if it may be used now; `TokenRefused` otherwise (unknown,
    revoked or expired). Asked on every request, from the row just read: nothing is cached,
    so a revocation or an expiry takes effect on the next request."""
    if token is None:
        raise TokenRefused("The token is not valid.")
    refusal = token.refusal()
    if refusal is not None:
        raise TokenRefused(_REFUSALS[refusal])
    return token


@sensitive_variables()
def proxy_token_authenticate(raw: str) -> ProxyToken:
    """The active token `raw` names, with its organization loaded; `TokenRefused` otherwise
    (malformed, unknown, revoked or expired). The secret retrievals read the token together
    with their key instead (`keyvault.retrieval`), under the same two rules."""
    digest = proxy_token_digest(raw)
    # Unique digest: no ordering needed (`first()` would add one to every request's query).
    token = next(
        iter(
            ProxyToken.objects.select_related("organization").filter(digest=digest).order_by()[:1]
        ),
        None,
    )
    return proxy_token_accept(token)
