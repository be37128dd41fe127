"""The provider catalog: which LLM providers a key can be for, and each one's non-secret config.

Each provider names its display name, its config schema (validated on every write), what its
secret is called, and the public prefixes its keys start with (used only for the masked hint).
"""

import json
import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.views.decorators.debug import sensitive_variables

from organizations.text import has_control_characters


@dataclass(frozen=True)
class ConfigField:
    name: str
    label: str
    required: bool = False
    kind: str = "text"  # "text" or "url"
    pattern: str | None = None
    pattern_hint: str = ""
    help_text: str = ""
    max_length: int = 300


@dataclass(frozen=True)
class Provider:
    id: str
    name: str
    config_fields: tuple[ConfigField, ...] = ()
    secret_label: str = "API key"
    key_prefixes: tuple[str, ...] = ()
    secret_is_service_account_json: bool = False
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
_url_validator = URLValidator(schemes=["https", "http"])


def get_provider(provider_id: str) -> Provider:
    """The provider with this id; a `ValidationError` on the `provider` field otherwise."""
    try:
        return _BY_ID[provider_id]
    except (KeyError, TypeError):
        raise ValidationError(
            {"provider": f"Unknown provider {str(provider_id)[:40]!r}."}, code="invalid"
        ) from None


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
    if spec.kind == "url" and not _is_url(value):
        return f"{spec.label} must be an http(s) URL."
    if spec.pattern and not re.fullmatch(spec.pattern, value):
        return f"{spec.label} does not look right (expected {spec.pattern_hint})."
    return None


def _is_url(value: str) -> bool:
    try:
        _url_validator(value)
    except ValidationError:
        return False
    return True


@sensitive_variables()
def validate_secret_format(provider: Provider, secret: str) -> None:
    """Provider-specific checks of the secret's shape (never echoing the secret)."""
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
