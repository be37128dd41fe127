"""The OpenAPI schema is what a proxy author builds from: valid OpenAPI 3, every operation with a
summary and the token scopes it needs, the ETag and If-None-Match of secret answers, and each
provider's settings (`config`) as a schema of its own, keyed by `provider`."""

import pytest
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from keyvault.providers import PROVIDERS


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_the_schema_is_valid_openapi_3(schema):
    validate_schema(schema)  # raises on any violation of the OpenAPI 3 schema
    assert schema["openapi"].startswith("3.")


def test_every_operation_has_a_summary_and_its_scopes(schema):
    for path, method, operation in operations(schema):
        assert operation.get("summary"), (method, path)
        assert "x-required-scopes" in operation, (method, path)
        assert operation["description"].startswith("**Token scopes:**"), (method, path)
        assert "Base of the API" not in operation["description"], (method, path)


@pytest.mark.parametrize(
    ("method", "path", "scopes"),
    [
        ("get", "/api/v1/ping", []),
        ("get", "/api/v1/keys", ["keys:read"]),
        ("post", "/api/v1/keys", ["keys:read", "keys:write"]),
        ("get", "/api/v1/keys/{key_id}", ["keys:read"]),
        ("patch", "/api/v1/keys/{key_id}", ["keys:read", "keys:write"]),
        ("delete", "/api/v1/keys/{key_id}", ["keys:read", "keys:write"]),
        ("get", "/api/v1/keys/{key_id}/secret", ["keys:secret"]),
        ("get", "/api/v1/resolve", ["keys:secret"]),
        ("get", "/api/v1/pool", ["keys:secret"]),
        ("post", "/api/v1/keys/{key_id}/report", ["keys:secret"]),
        ("post", "/api/v1/keys/{key_id}/test", ["keys:read", "keys:write"]),
    ],
)
def test_the_scopes_named_are_those_the_permission_check_asks(schema, method, path, scopes):
    assert schema["paths"][path][method]["x-required-scopes"] == scopes


@pytest.mark.parametrize("path", ["/api/v1/keys/{key_id}/secret", "/api/v1/resolve"])
def test_secret_answers_document_etag_and_revalidation(schema, path):
    operation = schema["paths"][path]["get"]
    assert "ETag" in operation["responses"]["200"]["headers"]
    assert "ETag" in operation["responses"]["304"]["headers"]
    assert "No body" in operation["responses"]["304"]["description"]
    [if_none_match] = [p for p in operation["parameters"] if p["name"] == "If-None-Match"]
    assert if_none_match["in"] == "header" and "304" in if_none_match["description"]
    assert operation["responses"]["200"]["content"]["application/json"]["examples"]


def test_a_key_is_one_variant_per_provider_keyed_by_provider(schema):
    schemas = schema["components"]["schemas"]
    for component in ("ProviderKey", "ProviderKeySecret", "ProviderKeyCreateRequest"):
        key = schemas[component]
        assert key["discriminator"]["propertyName"] == "provider"
        assert set(key["discriminator"]["mapping"]) == {p.id for p in PROVIDERS}
        assert len(key["oneOf"]) == len(PROVIDERS)
    azure = schemas["ProviderKeySecretAzureOpenai"]
    assert azure["properties"]["provider"] == {"type": "string", "enum": ["azure_openai"]}
    config = schemas[azure["properties"]["config"]["$ref"].rsplit("/", 1)[1]]
    assert set(config["required"]) == {"endpoint", "deployment", "api_version"}
    assert config["additionalProperties"] is False
    assert "*.openai.azure.com" in config["properties"]["endpoint"]["description"]
    assert config["properties"]["api_version"]["pattern"]


def test_no_config_is_an_anonymous_map_any_more(schema):
    # An object whose additionalProperties is a schema is what the docs page showed as
    # "additionalProp1": no key's config is one now.
    for name, component in schema["components"]["schemas"].items():
        config = component.get("properties", {}).get("config")
        if config is not None:
            assert "additionalProperties" not in config, name
    update = schema["components"]["schemas"]["PatchedProviderKeyUpdateRequest"]
    assert len(update["properties"]["config"]["anyOf"]) == len(PROVIDERS)
