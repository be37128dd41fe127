"""The provider catalog: which LLM providers a key can be for, and each one's non-secret config.

Each provider names its display name, its config schema (validated on every write), what its
secret is called, and the public prefixes its keys start with (used only for the masked hint).
"""

import datetime
import json
import re
import unicodedata
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.views.decorators.debug import sensitive_variables

from core.text import has_control_characters
from keyvault.endpoints import endpoint_problem


@dataclass(frozen=True)
class ConfigField:
    name: str
    label: str
    required: bool = False
    kind: str = "text"  # "text", "url" (where the secret is sent) or "date_version"
    pattern: str | None = None
    pattern_hint: str = ""
    help_text: str = ""
    max_length: int = 300
    # For a URL: the hosts it may name (`*.suffix` patterns); empty means any public host.
    allowed_hosts: tuple[str, ...] = ()

    @property
    def routes_secret(self) -> bool:
        """Whether this setting decides where the secret is sent: changing it needs the secret
        itself, and the envelope is bound to its value."""
        return self.kind == "url"


@dataclass(frozen=True)
class Provider:
    id: str
    name: str
    config_fields: tuple[ConfigField, ...] = ()
    secret_label: str = "API key"
    key_prefixes: tuple[str, ...] = ()
    secret_is_service_account_json: bool = False
    # Multi-line credentials (a service-account JSON file, a PEM key) may hold line breaks and
    # tabs; every other secret travels in an HTTP header, where they would inject headers.
    secret_is_multiline: bool = False
    docs_hint: str = ""

    def config_field(self, name: str) -> ConfigField | None:
        return next((f for f in self.config_fields if f.name == name), None)


def _base_url(required: bool = False, help_text: str = "") -> ConfigField:
    return ConfigField(
        "base_url",
        "Base URL",
        required=required,
        kind="url",
        help_text=help_text or "Leave empty for the provider's public endpoint.",
    )


_OPTIONAL_BASE_URL = (_base_url(),)

PROVIDERS: tuple[Provider, ...] = (
    Provider(
        "openai",
        "OpenAI",
        (
            _base_url(),
            ConfigField(
                "organization",
                "Organization ID",
                pattern=r"^org-[A-Za-z0-9]{1,64}$",
                pattern_hint="org-…",
            ),
            ConfigField(
                "project", "Project ID", pattern=r"^proj_[A-Za-z0-9]{1,64}$", pattern_hint="proj_…"
            ),
        ),
        key_prefixes=("sk-proj-", "sk-svcacct-", "sk-admin-", "sk-"),
    ),
    Provider("anthropic", "Anthropic", _OPTIONAL_BASE_URL, key_prefixes=("sk-ant-",)),
    Provider(
        "azure_openai",
        "Azure OpenAI",
        (
            ConfigField(
                "endpoint",
                "Endpoint",
                required=True,
                kind="url",
                help_text="https://<resource>.openai.azure.com",
                allowed_hosts=("*.openai.azure.com", "*.cognitiveservices.azure.com"),
            ),
            ConfigField(
                "deployment",
                "Deployment",
                required=True,
                pattern=r"^[A-Za-z0-9._-]{1,64}$",
                pattern_hint="letters, digits, '.', '_' and '-'",
            ),
            ConfigField(
                "api_version",
                "API version",
                required=True,
                kind="date_version",
                pattern=r"^\d{4}-\d{2}-\d{2}(-preview)?$",
                pattern_hint="YYYY-MM-DD or YYYY-MM-DD-preview",
            ),
        ),
    ),
    Provider(
        "bedrock",
        "AWS Bedrock",
        (
            ConfigField(
                "region",
                "Region",
                required=True,
                pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d{1,2}$",
                pattern_hint="us-east-1",
            ),
            ConfigField(
                "access_key_id",
                "Access key ID",
                required=True,
                pattern=r"^(AKIA|ASIA)[A-Z0-9]{16}$",
                pattern_hint="AKIA…",
            ),
        ),
        secret_label="Secret access key",
    ),
    Provider(
        "vertex",
        "Google Vertex AI",
        (
            ConfigField(
                "project",
                "Project ID",
                required=True,
                pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$",
                pattern_hint="my-project",
            ),
            ConfigField(
                "location",
                "Location",
                required=True,
                pattern=r"^(global|[a-z]+-[a-z]+\d+)$",
                pattern_hint="us-central1",
            ),
        ),
        secret_label="Service account key (JSON)",
        secret_is_service_account_json=True,
        secret_is_multiline=True,
    ),
    Provider("gemini", "Google Gemini", _OPTIONAL_BASE_URL, key_prefixes=("AIza",)),
    Provider("mistral", "Mistral", _OPTIONAL_BASE_URL),
    Provider("groq", "Groq", _OPTIONAL_BASE_URL, key_prefixes=("gsk_",)),
    Provider("cohere", "Cohere", _OPTIONAL_BASE_URL),
    Provider("together", "Together AI", _OPTIONAL_BASE_URL, key_prefixes=("tgp_v1_",)),
    Provider("openrouter", "OpenRouter", _OPTIONAL_BASE_URL, key_prefixes=("sk-or-v1-", "sk-or-")),
    Provider("deepseek", "DeepSeek", _OPTIONAL_BASE_URL, key_prefixes=("sk-",)),
    Provider("xai", "xAI", _OPTIONAL_BASE_URL, key_prefixes=("xai-",)),
    Provider(
        "openai_compatible",
        "OpenAI-compatible (custom)",
        (_base_url(required=True, help_text="The API root, such as https://llm.example.com/v1"),),
        key_prefixes=("sk-",),
    ),
)

_BY_ID = {provider.id: provider for provider in PROVIDERS}
CHOICES = [(provider.id, provider.name) for provider in PROVIDERS]


def get_provider(provider_id: str) -> Provider:
    """The provider with this id; a `ValidationError` on the `provider` field otherwise."""
    try:
        return _BY_ID[provider_id]
    except (KeyError, TypeError):
        raise ValidationError(
            {"provider": f"Unknown provider {str(provider_id)[:40]!r}."}, code="invalid"
        ) from None


def is_provider(provider_id) -> bool:
    return provider_id in _BY_ID


def validate_config(provider: Provider, config) -> dict[str, str]:
    """The config cleaned against the provider's schema: strings stripped, empties dropped.

    Raises `ValidationError({"config": [...]})` listing every problem at once.
    """
    cleaned, problems = check_config(provider, config)
    if problems:
        raise ValidationError(
            {"config": [ValidationError(m) for messages in problems.values() for m in messages]}
        )
    return cleaned


def check_config(provider: Provider, config) -> tuple[dict[str, str], dict[str | None, list]]:
    """`(cleaned config, problems)`: problems map a setting's name to its messages (None for
    problems that belong to no known setting), so a form can show each beside its field."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        return {}, {None: ["Config must be an object of settings."]}
    problems: dict[str | None, list[str]] = {}
    cleaned: dict[str, str] = {}
    for key, value in config.items():
        spec = provider.config_field(key)
        if spec is None:
            problems.setdefault(None, []).append(
                f"{str(key)[:40]!r} is not a setting of {provider.name}."
            )
            continue
        if value is None:
            continue
        if not isinstance(value, str):
            problems.setdefault(key, []).append(f"{spec.label} must be text.")
            continue
        value = value.strip()
        if not value:
            continue
        problem = _problem_with(spec, value)
        if problem:
            problems.setdefault(key, []).append(problem)
        else:
            cleaned[key] = value
    for spec in provider.config_fields:
        if spec.required and spec.name not in cleaned and spec.name not in problems:
            problems[spec.name] = [f"{spec.label} is required for {provider.name}."]
    return cleaned, problems


def _problem_with(spec: ConfigField, value: str) -> str | None:
    if len(value) > spec.max_length:
        return f"{spec.label} is longer than {spec.max_length} characters."
    # URLValidator lets NUL through in a path, and PostgreSQL's jsonb cannot store it.
    if has_control_characters(value):
        return f"{spec.label} cannot contain control characters."
    if spec.kind == "url":
        return endpoint_problem(value, label=spec.label, allowed_hosts=spec.allowed_hosts)
    if spec.pattern and not re.fullmatch(spec.pattern, value):
        return f"{spec.label} does not look right (expected {spec.pattern_hint})."
    if spec.kind == "date_version" and not _is_date(value[:10]):
        return f"{spec.label} is not a real date (expected {spec.pattern_hint})."
    return None


def _is_date(text: str) -> bool:
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def routing_config(provider: Provider, config: dict) -> dict[str, str]:
    """The settings of `config` that decide where the secret is sent."""
    return {
        spec.name: config[spec.name]
        for spec in provider.config_fields
        if spec.routes_secret and spec.name in config
    }


def served_config(provider: Provider, config: dict) -> dict:
    """The settings of `config` that the provider's schema knows: all a proxy is ever handed.
    Anything else in the column was not written by Keyvault and is not passed on."""
    return {
        spec.name: config[spec.name]
        for spec in provider.config_fields
        if isinstance(config, dict) and spec.name in config
    }


def secret_binding(provider: Provider, config: dict) -> str:
    """The canonical text a key's envelope is bound to: its provider and routing settings as
    compact JSON with sorted keys, so the same settings always give the same text. The provider
    is part of it because it too decides where the secret goes (its public endpoint)."""
    return json.dumps(
        {"provider": provider.id, "routing": routing_config(provider, config or {})},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


# Line breaks, tabs and the other control characters of a header value; U+2028/U+2029 end a
# line for some parsers too.
_HEADER_BREAKING_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
_MULTILINE_WHITESPACE = frozenset("\n\r\t")


@sensitive_variables()
def secret_control_problem(provider: Provider, secret: str) -> str | None:
    """Why `secret` holds characters it may not (never quoting the secret); None if it holds
    none. Proxies put single-line secrets into an HTTP header (`Authorization: Bearer …`),
    whose values are visible ASCII: a line break there injects headers of the attacker's
    choosing, and a non-ASCII character can turn into one where a stack keeps only the low byte
    (U+010D U+010A become CR LF). Multi-line credentials (JSON documents) keep line breaks and
    tabs and refuse every other control character."""
    if provider.secret_is_multiline:
        for char in secret:
            if (
                char not in _MULTILINE_WHITESPACE
                and unicodedata.category(char) in _HEADER_BREAKING_CATEGORIES
            ):
                return "The secret cannot contain control characters other than line breaks."
        return None
    if any(unicodedata.category(char) in _HEADER_BREAKING_CATEGORIES for char in secret):
        return "The secret cannot contain control characters or line breaks."
    if not all(" " <= char <= "~" for char in secret):
        return "The secret can contain only printable ASCII characters (no accents or emoji)."
    return None


@sensitive_variables()
def validate_secret_format(provider: Provider, secret: str) -> None:
    """Provider-specific checks of the secret's shape (never echoing the secret)."""
    problem = secret_control_problem(provider, secret)
    if problem:
        raise ValidationError({"secret": problem}, code="invalid")
    if not provider.secret_is_service_account_json:
        return
    try:
        document = json.loads(secret)
    except (ValueError, RecursionError):  # deeply nested JSON exhausts the parser's stack
        raise ValidationError(
            {"secret": "A service account key must be the JSON file Google issued."},
            code="invalid",
        ) from None
    if not isinstance(document, dict) or not {"type", "private_key", "client_email"} <= set(
        document
    ):
        raise ValidationError(
            {"secret": "The JSON is not a service account key (type, private_key, client_email)."},
            code="invalid",
        )
