"""AWS Signature Version 4 for one request, written out (the core install carries no AWS SDK).

Only what a connection test needs: a request with no query string or one already in canonical
order, the `host` and `x-amz-date` headers signed, the payload hashed. Follows AWS's published
algorithm (canonical request, string to sign, the derived signing key); tests/test_probes.py
checks it against the SDK's signer.
"""

import hashlib
import hmac
from datetime import datetime
from urllib.parse import quote, urlsplit

from django.views.decorators.debug import sensitive_variables

ALGORITHM = "AWS4-HMAC-SHA256"


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _host(url: str) -> str:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    host = parts.hostname or ""
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def _canonical_query(query: str) -> str:
    pairs = [piece.partition("=") for piece in query.split("&") if piece]
    return "&".join(
        f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}"
        for name, _, value in sorted(pairs)
    )


@sensitive_variables()
def signed_headers(
    *,
    method: str,
    url: str,
    region: str,
    service: str,
    access_key_id: str,
    secret_access_key: str,
    now: datetime,
    body: bytes = b"",
) -> dict[str, str]:
    """The headers that sign the request: `Host`, `X-Amz-Date`, `X-Amz-Content-Sha256`,
    `Authorization`."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    parts = urlsplit(url)
    payload_hash = hashlib.sha256(body).hexdigest()
    headers = {"host": _host(url), "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    names = sorted(headers)
    canonical = "\n".join(
        [
            method.upper(),
            quote(parts.path or "/", safe="/-_.~"),
            _canonical_query(parts.query),
            "".join(f"{name}:{headers[name].strip()}\n" for name in names),
            ";".join(names),
            payload_hash,
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(f"AWS4{secret_access_key}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "Host": headers["host"],
        "X-Amz-Date": amz_date,
        "X-Amz-Content-Sha256": payload_hash,
        "Authorization": (
            f"{ALGORITHM} Credential={access_key_id}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        ),
    }
