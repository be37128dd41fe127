"""The OpenAPI schema's own parts: the bearer-token authentication, the schema's paths, and
what a proxy author needs on top of what drf-spectacular infers."""

import copy

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from core.text import with_article


class ProxyTokenScheme(OpenApiAuthenticationExtension):
    target_class = "keyvault.api.authentication.ProxyTokenAuthentication"
    name = "proxyToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A proxy token: `kvp_` followed by 43 characters.",
        }


def leave_out_alternate_spellings(endpoints, **kwargs):
    """drf-spectacular preprocessing hook: `keys/` answers as `keys` does, for people who type
    the slash; the schema names each operation once, at its canonical path."""
    return [endpoint for endpoint in endpoints if not endpoint[0].endswith("/")]


# --- What a proxy author needs from the schema (a postprocessing hook) -------------------------
# Every operation gets a summary, the token scopes it needs (from its view's `required_actions`,
# the same table the permission check reads, so the two cannot disagree) and, where it returns a
# secret, its ETag and If-None-Match behaviour; a key's `config` is described per provider from
# the catalog (keyvault/providers.py), as a `oneOf` over the whole key keyed by `provider`.

# (path relative to /api/v1/, method): (summary, description). A view's own summary wins.
OPERATIONS = {
    ("ping", "get"): (
        "Check a token",
        "An authenticated no-op: names the token's organization, the token and its scopes.",
    ),
    ("keys", "get"): (
        "List keys (metadata only)",
        "The organization's keys, paginated, without secrets; `provider` filters.",
    ),
    ("keys", "post"): (
        "Add a key",
        "Stores a new key; `config` holds the provider's settings (see the schema per "
        "provider). The answer is the key's metadata, never the secret.",
    ),
    ("keys/{key_id}", "get"): ("Get a key's metadata", "One key, without its secret."),
    ("keys/{key_id}", "patch"): (
        "Change, rotate, enable or disable a key",
        "Any of `name`, `config`, `is_default`, `enabled`, `secret` (a new secret rotates the "
        "key and bumps `version`). Changing where the secret is sent (`endpoint`, `base_url`) "
        "needs `secret` in the same body.",
    ),
    ("keys/{key_id}", "delete"): ("Delete a key", "Proxies stop receiving it at once."),
    ("keys/{key_id}/secret", "get"): (
        "Get a key with its secret",
        "The key's metadata and its decrypted `secret`. Send the `ETag` back as "
        "`If-None-Match` to revalidate: `304` with no body when unchanged. A disabled key "
        "answers `409` (`key_disabled`), even to a revalidation.",
    ),
    ("resolve", "get"): (
        "Resolve a provider's key with its secret",
        "The organization's default enabled key for `provider`, or the key named `name`, with "
        "its secret. Without a default: `404` with `code` `no_default_key`. With "
        "`fallback=true`, the first available key of the pool (none: `409` "
        "`no_available_key`). Revalidate with `If-None-Match` as for a key's secret.",
    ),
    ("keys/{key_id}/report", "post"): (
        "Report what the provider answered",
        "A proxy reports the provider's status for this key (`401`/`403` mark it failing, "
        "`429`/`5xx` cooling until `retry_after`, `2xx` clears cooling); answers `202` with the "
        "key's health.",
    ),
    ("keys/{key_id}/test", "post"): (
        "Test a key against its provider",
        "One cheap authenticated call to the provider (10-second timeout); the result is "
        "recorded and a pass clears failing. The secret never appears in the answer.",
    ),
    ("keys/{key_id}/versions", "get"): (
        "List a key's secret versions",
        "The current version and the kept previous ones, newest first: number, when, by whom, "
        "hint. Never a secret.",
    ),
    ("keys/{key_id}/rollback", "post"): (
        "Roll a key back to a kept version",
        "Makes the secret of a kept version current again, as a new version (a rotation, "
        "audited). Refused for a version sent to other routing settings than the key's now.",
    ),
    ("pool", "get"): (
        "Get a provider's pool of available keys",
        "The provider's available keys (enabled, not failing, not cooling) in pool order, "
        "each with its secret and health: what a proxy fails over through locally.",
    ),
    ("snapshot", "get"): (
        "Take a snapshot of every enabled key",
        "Every enabled key with its secret, and the `cursor` to follow the event feed from.",
    ),
    ("events", "get"): (
        "Follow the key events",
        "The key events after `after`, in order (at most 500); with `wait`, a long poll. "
        "`410` (`cursor_expired`): take a new snapshot.",
    ),
}
SECRET_OPERATIONS = {("keys/{key_id}/secret", "get"), ("resolve", "get")}
API_PREFIX = "/api/v1/"
# Components describing one key; each becomes a `oneOf` of one variant per provider.
KEY_COMPONENTS = ("ProviderKey", "ProviderKeySecret", "ProviderKeyCreateRequest")
UPDATE_COMPONENTS = ("PatchedProviderKeyUpdateRequest",)


def token_scopes_for(actions) -> list[str]:
    """The token scopes a request needs for `actions` (the view's `required_actions`)."""
    from organizations import permissions, roles

    scopes = set()
    for action in actions:
        scope = roles.token_scope_granting(permissions.scope_for(action))
        if scope is None:
            # Changing a key: tokens get it with keys:write (roles.TOKEN_SCOPE_GRANTS).
            scope = roles.TokenScope.KEYS_WRITE
        scopes.add(str(scope))
    return sorted(scopes)


def config_schema(provider) -> dict:
    properties, required = {}, []
    for spec in provider.config_fields:
        field = {"type": "string", "title": spec.label, "maxLength": spec.max_length}
        description = spec.help_text or (
            f"Expected: {spec.pattern_hint}." if spec.pattern_hint else ""
        )
        if spec.kind == "url":
            field["format"] = "uri"
            description = (
                f"{description.rstrip('.')}. An https URL." if description else "An https URL."
            )
            if spec.allowed_hosts:
                description += f" Hosts: {', '.join(spec.allowed_hosts)}."
        if spec.pattern:
            field["pattern"] = spec.pattern
        if description:
            field["description"] = description
        properties[spec.name] = field
        if spec.required:
            required.append(spec.name)
    schema = {
        "type": "object",
        "title": f"{provider.name} settings",
        "description": f"`config` of {with_article(provider.id).replace(' ', ' `', 1)}` key.",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


def _component_name(provider) -> str:
    return "".join(part.title() for part in provider.id.split("_"))


def _operations(result, generator):
    """(relative path, method, operation, view class) for every documented operation."""
    for path, _regex, method, callback in getattr(generator, "endpoints", None) or []:
        operation = result.get("paths", {}).get(path, {}).get(method.lower())
        if operation is not None:
            yield path.removeprefix(API_PREFIX), method.lower(), operation, callback.cls


def _describe_operations(result, generator):
    for path, method, operation, view in _operations(result, generator):
        summary, description = OPERATIONS.get((path, method), (None, None))
        own = operation.get("description", "")
        if summary and not operation.get("summary"):
            operation["summary"] = summary
        if description and (not own or own.startswith("Base of the API")):
            own = description
        actions = getattr(view, "required_actions", {}).get(method.upper())
        if actions is not None:
            scopes = token_scopes_for(actions)
            operation["x-required-scopes"] = scopes
            needs = ", ".join(f"`{s}`" for s in scopes) if scopes else "any valid token"
            own = f"**Token scopes:** {needs}.\n\n{own}".strip()
        operation["description"] = own
        if (path, method) in SECRET_OPERATIONS:
            _document_revalidation(operation)
        throttled = operation.get("responses", {}).get("429")
        if throttled is not None:
            throttled.setdefault("headers", {})["Retry-After"] = {
                "description": "Seconds to wait before asking again.",
                "schema": {"type": "integer"},
            }


def _document_revalidation(operation):
    etag = {
        "description": "The version of this answer: send it back as If-None-Match.",
        "schema": {"type": "string"},
        "example": '"3f1c9a0e2b7d4c6a8e1f0b2d3c4a5e6f"',
    }
    responses = operation.setdefault("responses", {})
    responses.setdefault("200", {"description": ""}).setdefault("headers", {})["ETag"] = etag
    not_modified = responses.setdefault("304", {"description": ""})
    not_modified["description"] = (
        "Not modified: the copy named by If-None-Match is current. No body, no decryption."
    )
    not_modified.setdefault("headers", {})["ETag"] = etag
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "header" and parameter.get("name") == "If-None-Match":
            parameter["description"] = (
                "The ETag of the copy you hold: answered with 304 and no body while it is "
                "current (a disabled key still answers 409)."
            )
    ok = responses["200"].get("content", {}).get("application/json")
    if ok is not None:
        ok.setdefault(
            "examples",
            {
                "azure_openai": {
                    "summary": "An Azure OpenAI key",
                    "value": {
                        "id": "6f1c2b9e-3a4d-4e5f-8a9b-0c1d2e3f4a5b",
                        "provider": "azure_openai",
                        "name": "EU deployment",
                        "hint": "0123…ey04",
                        "config": {
                            "endpoint": "https://example-eu.openai.azure.com",
                            "deployment": "gpt-4o",
                            "api_version": "2024-10-21",
                        },
                        "is_default": True,
                        "enabled": True,
                        "version": 2,
                        "created_at": "2026-11-30T09:12:00Z",
                        "updated_at": "2026-12-01T10:00:00Z",
                        "rotated_at": "2026-12-01T10:00:00Z",
                        "last_used_at": "2026-12-02T00:10:00Z",
                        "secret": "<the provider's API key>",
                    },
                }
            },
        )


def _config_per_provider(result):
    from keyvault.providers import PROVIDERS

    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    config_refs = {}
    for provider in PROVIDERS:
        name = f"{_component_name(provider)}Config"
        schemas[name] = config_schema(provider)
        config_refs[provider.id] = {"$ref": f"#/components/schemas/{name}"}
    for component in KEY_COMPONENTS:
        base = schemas.get(component)
        if not base or "config" not in base.get("properties", {}):
            continue
        variants, mapping = [], {}
        for provider in PROVIDERS:
            variant = copy.deepcopy(base)
            variant["title"] = f"{provider.name} key"
            variant.pop("description", None)
            variant["properties"]["provider"] = {"type": "string", "enum": [provider.id]}
            variant["properties"]["config"] = config_refs[provider.id]
            variant_name = f"{component}{_component_name(provider)}"
            schemas[variant_name] = variant
            reference = f"#/components/schemas/{variant_name}"
            variants.append({"$ref": reference})
            mapping[provider.id] = reference
        schemas[component] = {
            "oneOf": variants,
            "discriminator": {"propertyName": "provider", "mapping": mapping},
            "description": (
                base.get("description", "") + " One variant per provider: "
                "`provider` decides what `config` holds."
            ).strip(),
        }
    for component in UPDATE_COMPONENTS:
        base = schemas.get(component)
        if base and "config" in base.get("properties", {}):
            base["properties"]["config"] = {
                "anyOf": list(config_refs.values()),
                "description": "The settings of the key's provider (the schema of its "
                "provider's `config`).",
            }


def describe_for_proxy_authors(result, generator, request, public):
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS)."""
    _describe_operations(result, generator)
    _config_per_provider(result)
    return result
