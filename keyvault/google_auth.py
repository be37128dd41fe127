"""A Google service account's OAuth token request: the signed JWT assertion (RS256, with
`cryptography`) that the token endpoint exchanges for an access token (RFC 7523)."""

import base64
import json
from datetime import datetime

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.views.decorators.debug import sensitive_variables

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
LIFETIME_SECONDS = 600


class ServiceAccountError(ValueError):
    """The service-account document cannot sign (no usable RSA private key)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@sensitive_variables()
def assertion(document: dict, *, audience: str, now: datetime) -> str:
    """The JWT a service account presents to `audience` (the token endpoint called)."""
    try:
        private_key = serialization.load_pem_private_key(
            str(document.get("private_key", "")).encode(), password=None
        )
    except (ValueError, TypeError):
        raise ServiceAccountError("The service account's private key cannot be read.") from None
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise ServiceAccountError("The service account's private key is not an RSA key.")
    header = {"alg": "RS256", "typ": "JWT"}
    if document.get("private_key_id"):
        header["kid"] = str(document["private_key_id"])
    issued = int(now.timestamp())
    claims = {
        "iss": str(document.get("client_email", "")),
        "scope": CLOUD_PLATFORM_SCOPE,
        "aud": audience,
        "iat": issued,
        "exp": issued + LIFETIME_SECONDS,
    }
    signing_input = ".".join(
        _b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"
