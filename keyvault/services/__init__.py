"""The services of the `keyvault` app, one module per entity; this package's interface.

Callers use `from keyvault import services` and `services.provider_key_create(...)`: which
module holds a service is the package's business.

- `provider_keys`: creating, editing, rotating, rekeying and deleting provider keys, and the
  one path that hands a plaintext secret out (`provider_key_reveal`).
- `proxy_tokens`: creating and revoking proxy tokens.
- `key_health`: a proxy's report of what the provider answered, connection tests, and the order
  of a provider's pool.
- `envelopes`: the instance-wide jobs over every envelope (KEK rotation, the format upgrade).
"""

from keyvault.services.envelopes import (
    EnvelopeJob,
    EnvelopesUpgrade,
    KekRotation,
    envelopes_upgrade,
    kek_rotate,
)
from keyvault.services.key_health import (
    ConnectionTest,
    Report,
    provider_key_pool_reorder,
    provider_key_report,
    provider_key_test,
)
from keyvault.services.provider_keys import (
    NAME_MAX_LENGTH,
    clean_name,
    clean_priority,
    clean_secret,
    provider_key_check_reveal,
    provider_key_create,
    provider_key_delete,
    provider_key_rekey,
    provider_key_reveal,
    provider_key_rotate,
    provider_key_update,
)
from keyvault.services.proxy_tokens import (
    MAX_TOKEN_DAYS,
    TOKEN_NAME_MAX_LENGTH,
    proxy_token_create,
    proxy_token_revoke,
)

__all__ = [
    "MAX_TOKEN_DAYS",
    "NAME_MAX_LENGTH",
    "TOKEN_NAME_MAX_LENGTH",
    "ConnectionTest",
    "EnvelopeJob",
    "EnvelopesUpgrade",
    "KekRotation",
    "Report",
    "clean_name",
    "clean_priority",
    "clean_secret",
    "envelopes_upgrade",
    "kek_rotate",
    "provider_key_check_reveal",
    "provider_key_create",
    "provider_key_delete",
    "provider_key_pool_reorder",
    "provider_key_rekey",
    "provider_key_report",
    "provider_key_reveal",
    "provider_key_rotate",
    "provider_key_test",
    "provider_key_update",
    "proxy_token_create",
    "proxy_token_revoke",
]
