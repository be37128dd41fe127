"""The masked hint shown instead of a secret: enough to tell keys apart, too little to use.

Computed once at write time and stored, so listing keys never decrypts anything. A known public
prefix is kept (`sk-ant-`), then at most the last four characters; a short secret shows fewer,
because four characters of an eight-character secret would be half of it.
"""

import json

from django.views.decorators.debug import sensitive_variables

ELLIPSIS = "…"


@sensitive_variables()
def mask_secret(secret: str, *, key_prefixes: tuple[str, ...] = ()) -> str:
    service_account_hint = _service_account_hint(secret)
    if service_account_hint:
        return service_account_hint
    prefix = next(
        (p for p in sorted(key_prefixes, key=len, reverse=True) if secret.startswith(p)), ""
    )
    rest = secret[len(prefix) :]
    visible = 4 if len(rest) >= 16 else 2 if len(rest) >= 10 else 0
    tail = rest[-visible:] if visible else ""
    # A tail with control characters tells nobody anything, and PostgreSQL cannot store NUL.
    if not tail.isprintable():
        tail = ""
    return f"{prefix}{ELLIPSIS}{tail}"


@sensitive_variables()
def _service_account_hint(secret: str) -> str | None:
    """A Google service account key is identified by its key id, not by its last characters."""
    if not secret.startswith("{"):
        return None
    try:
        document = json.loads(secret)
    except (ValueError, RecursionError):  # deeply nested JSON exhausts the parser's stack
        return None
    key_id = document.get("private_key_id") if isinstance(document, dict) else None
    if not isinstance(key_id, str) or len(key_id) < 8 or not key_id[-4:].isprintable():
        return None
    return f"service account {ELLIPSIS}{key_id[-4:]}"
