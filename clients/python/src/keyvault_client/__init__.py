"""Provider keys from Keyvault, served from memory to an LLM proxy.

from keyvault_client import KeyvaultClient

with KeyvaultClient("https://keyvault.example.com", token) as client:
    credential = client.resolve("openai")
    credential.secret, credential.config, credential.version
"""

from keyvault_client.aio import AsyncKeyvaultClient
from keyvault_client.client import ClientStatus, KeyvaultClient
from keyvault_client.credential import Credential
from keyvault_client.errors import (
    KeyvaultAuthError,
    KeyvaultClosedError,
    KeyvaultError,
    KeyvaultNotFoundError,
    KeyvaultStaleError,
    KeyvaultUnavailableError,
)
from keyvault_client.version import __version__

__all__ = [
    "AsyncKeyvaultClient",
    "ClientStatus",
    "Credential",
    "KeyvaultAuthError",
    "KeyvaultClient",
    "KeyvaultClosedError",
    "KeyvaultError",
    "KeyvaultNotFoundError",
    "KeyvaultStaleError",
    "KeyvaultUnavailableError",
    "__version__",
]
