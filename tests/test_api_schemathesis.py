"""Property-based run of the whole proxy API against its own OpenAPI schema (bounded).

Schemathesis generates requests from the schema and checks that no response is a server error
and that every response matches what the schema promises (status codes, content types, bodies,
headers). Bodies the schema allows but the services refuse (a whitespace-only secret, a
duplicate name) are legitimate 400s, so the "positive data is accepted" check is not used.
"""

import pytest
import schemathesis
from django.core import signals
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from keyvault import services
from organizations.access import Access
from tests.factories import ProviderKeyFactory

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


# The schema view touches no database, so the schema loads when the module is collected.
schema = schemathesis.openapi.from_wsgi("/api/v1/schema", get_wsgi_application())


@pytest.fixture
def keep_test_connection():
    """Calls into the WSGI app would close the database connection at each request's start
    and end, and with it the test's transaction; Django's own test client detaches these
    handlers in the same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def full_access_token(organization, settings, keep_test_connection):
    settings.KEYVAULT_API_TOKEN_RATE_PER_MINUTE = 0
    cache.clear()
    ProviderKeyFactory(organization=organization, provider="openai", is_default=True)
    ProviderKeyFactory(organization=organization, provider="anthropic")
    _token, raw = services.proxy_token_create(
        organization=organization,
        actor=Access.operator("tests"),
        name="schemathesis",
        scopes=["keys:read", "keys:secret", "keys:write"],
    )
    return raw


@schema.parametrize()
@hypothesis_settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_never_errors_and_matches_its_schema(case, full_access_token):
    case.call_and_validate(headers={"Authorization": f"Bearer {full_access_token}"}, checks=CHECKS)
