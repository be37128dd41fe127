"""Connection tests: one cheap authenticated call per provider kind, through `keyvault.outbound`.

| provider | call | credential |
|---|---|---|
| OpenAI and the OpenAI-compatible APIs | `GET {base}/models` | `Authorization: Bearer` |
| OpenRouter | `GET {base}/key` (its model list needs no key) | `Authorization: Bearer` |
| Anthropic | `GET {base}/v1/models` | `x-api-key`, `anthropic-version` |
| Gemini | `GET {base}/v1beta/models` | `x-goog-api-key` |
| Cohere | `GET {base}/v1/models` | `Authorization: Bearer` |
| Azure OpenAI | `GET {endpoint}/openai/deployments/{deployment}?api-version=…` | `api-key` |
| Bedrock | `GET {base}/foundation-models` | SigV4 (`keyvault.sigv4`) |
| Vertex | `POST {base}/token`, a JWT bearer grant | the service account's RS256 signature |

Where the call goes: the operator's `KEYVAULT_PROVIDER_BASE_URLS` entry for the provider when
there is one (it replaces the endpoint of every key of that provider: an egress gateway, a
test double), else the key's own endpoint or base URL, else the provider's public endpoint. A
Vertex key's document names a token URI too; it is not used, since the secret's own content
would then choose where the secret's signature is sent.

The outcome's detail is Keyvault's own sentence. The provider's body is never quoted: some
providers echo part of the credential in their refusals.
"""

import json
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from django.conf import settings
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from keyvault import google_auth, outbound, sigv4
from keyvault.errors import OutboundRefused

USER_AGENT = "Keyvault-connection-test/1"
ANTHROPIC_VERSION = "2023-06-01"

PUBLIC_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "mistral": "https://api.mistral.ai/v1",
    "groq": "https://api.groq.com/openai/v1",
    "cohere": "https://api.cohere.com",
    "together": "https://api.together.xyz/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "deepseek": "https://api.deepseek.com",
    "xai": "https://api.x.ai/v1",
    "bedrock": "https://bedrock.{region}.amazonaws.com",
    "vertex": "https://oauth2.googleapis.com",
}
_OPENAI_STYLE = {"openai", "mistral", "groq", "together", "deepseek", "xai", "openai_compatible"}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None
    detail: str
    # The provider refused the credential itself (the key is then failing).
    refused: bool = False


@dataclass(frozen=True)
class _Call:
    method: str
    url: str
    headers: dict
    body: bytes | None = None


def base_url_overrides() -> dict[str, str]:
    return dict(getattr(settings, "KEYVAULT_PROVIDER_BASE_URLS", {}) or {})


def base_url(key) -> str:
    """Where `key`'s test call goes (see the module's doc)."""
    override = base_url_overrides().get(key.provider)
    if override:
        return override.rstrip("/")
    config = key.config or {}
    own = config.get("endpoint") if key.provider == "azure_openai" else config.get("base_url")
    if own:
        return own.rstrip("/")
    public = PUBLIC_BASE_URLS.get(key.provider, "")
    return public.format(region=config.get("region", "")).rstrip("/")


@sensitive_variables()
def _call_for(key, secret: str, base: str) -> _Call:
    provider, config = key.provider, key.config or {}
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if provider in _OPENAI_STYLE:
        headers["Authorization"] = f"Bearer {secret}"
        if config.get("organization"):
            headers["OpenAI-Organization"] = config["organization"]
        if config.get("project"):
            headers["OpenAI-Project"] = config["project"]
        return _Call("GET", f"{base}/models", headers)
    if provider == "openrouter":
        headers["Authorization"] = f"Bearer {secret}"
        return _Call("GET", f"{base}/key", headers)
    if provider == "cohere":
        headers["Authorization"] = f"Bearer {secret}"
        return _Call("GET", f"{base}/v1/models", headers)
    if provider == "anthropic":
        headers.update({"x-api-key": secret, "anthropic-version": ANTHROPIC_VERSION})
        return _Call("GET", f"{base}/v1/models", headers)
    if provider == "gemini":
        headers["x-goog-api-key"] = secret
        return _Call("GET", f"{base}/v1beta/models", headers)
    if provider == "azure_openai":
        headers["api-key"] = secret
        deployment = quote(config.get("deployment", ""), safe="")
        query = urlencode({"api-version": config.get("api_version", "")})
        return _Call("GET", f"{base}/openai/deployments/{deployment}?{query}", headers)
    if provider == "bedrock":
        url = f"{base}/foundation-models"
        headers.update(
            sigv4.signed_headers(
                method="GET",
                url=url,
                region=config.get("region", ""),
                service="bedrock",
                access_key_id=config.get("access_key_id", ""),
                secret_access_key=secret,
                now=timezone.now(),
            )
        )
        return _Call("GET", url, headers)
    if provider == "vertex":
        url = f"{base}/token"
        document = json.loads(secret)
        grant = google_auth.assertion(document, audience=url, now=timezone.now())
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        body = urlencode({"grant_type": google_auth.JWT_BEARER_GRANT, "assertion": grant})
        return _Call("POST", url, headers, body.encode())
    raise ValueError(f"No connection test for {provider}.")


def _refused_by_token_endpoint(answer: outbound.Answer) -> bool:
    """Google's token endpoint answers a deleted, disabled or forged service-account key with
    400 `invalid_grant` (or `invalid_client`), not 401."""
    try:
        error = json.loads(answer.body or b"{}").get("error")
    except (ValueError, AttributeError):
        return False
    return error in ("invalid_grant", "invalid_client", "unauthorized_client")


def _judge(key, answer: outbound.Answer) -> Outcome:
    status = answer.status
    if 200 <= status <= 299:
        return Outcome(True, status, "The provider accepted the credential.")
    refused = status in (401, 403) or (
        key.provider == "vertex" and status == 400 and _refused_by_token_endpoint(answer)
    )
    if refused:
        return Outcome(False, status, f"The provider refused the credential ({status}).", True)
    if status == 429:
        return Outcome(False, status, "The provider is rate-limiting this credential (429).")
    if status == 404:
        return Outcome(
            False, status, "The provider answered 404: check the endpoint and deployment."
        )
    return Outcome(False, status, f"The provider answered {status}.")


@sensitive_variables()
def probe(key, secret: str) -> Outcome:
    """Make the key's test call and judge the answer; never raises for the network's sake."""
    base = base_url(key)
    if not base:
        return Outcome(False, None, "There is no endpoint to test this key against.")
    try:
        call = _call_for(key, secret, base)
    except google_auth.ServiceAccountError as exc:
        return Outcome(False, None, str(exc), refused=True)
    except ValueError:
        return Outcome(False, None, "This key cannot be tested.")
    try:
        answer = outbound.request(call.method, call.url, headers=call.headers, body=call.body)
    except OutboundRefused as exc:
        return Outcome(False, None, f"Not called: {exc}")
    except outbound.OutboundTimeout as exc:
        return Outcome(False, None, f"Timed out: {exc}")
    except outbound.OutboundFailed as exc:
        return Outcome(False, None, str(exc))
    return _judge(key, answer)
