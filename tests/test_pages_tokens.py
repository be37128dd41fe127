"""The proxy-token pages: a new token is shown once (never again, nowhere else, never stored),
it works against the API until it is revoked, the list shows what a token is without it, and
refused forms create nothing."""

import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit import AuditAction
from audit.models import AuditEvent
from core.tokens import token_digest
from keyvault.models import ProxyToken
from tests.factories import ProviderKeyFactory, ProxyTokenFactory
from tests.helpers import TOKEN_PATTERN, rows, stored_beside_pages, url

pytestmark = pytest.mark.django_db

CLIENT_IP = "198.51.100.23"


def create(client, organization, **fields):
    data = {"name": "gateway-prod", "scopes": ["keys:read", "keys:secret"], **fields}
    data = {name: value for name, value in data.items() if value is not None}
    return client.post(url("tokens:create", organization), data, REMOTE_ADDR=CLIENT_IP)


def raw_token_of(response) -> str:
    [raw] = set(TOKEN_PATTERN.findall(response.content.decode()))
    return raw


def api(client, raw, path="/api/v1/ping"):
    return client.get(path, HTTP_AUTHORIZATION=f"Bearer {raw}")


# --- Creation: shown once -----------------------------------------------------------------------


def test_creating_a_token_shows_it_once_with_a_warning_and_a_copy_button(
    organization, owner, owner_client
):
    response = create(owner_client, organization, expires_in_days="30")

    assert response.status_code == 200
    html = response.content.decode()
    raw = raw_token_of(response)
    token = ProxyToken.objects.get(organization=organization)
    assert token.digest == token_digest(raw)
    assert token.last_four == raw[-4:]
    assert token.created_by == owner
    assert token.scopes == ["keys:read", "keys:secret"]
    assert timedelta(days=29, hours=23) < token.expires_at - timezone.now() <= timedelta(days=30)
    assert "will not be shown again" in html
    assert re.search(rf'<input id="new-token" type="text" value="{raw}" readonly', html)
    assert 'data-copy-target="new-token"' in html
    assert html.count(raw) == 1


def test_the_creation_response_is_never_cached(organization, owner_client):
    response = create(owner_client, organization)

    cache_control = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"no-store", "no-cache", "private"} <= cache_control
    assert "Expires" in response


def test_creation_is_audited_without_the_token(organization, owner, owner_client):
    response = create(owner_client, organization)
    raw = raw_token_of(response)

    event = AuditEvent.objects.get(action=AuditAction.TOKEN_CREATED)
    assert (event.actor_user, event.ip_address) == (owner, CLIENT_IP)
    assert event.metadata["last_four"] == raw[-4:]
    assert raw not in json.dumps(event.metadata)
    assert raw[4:-4] not in f"{event.target_label} {json.dumps(event.metadata)}"


def test_the_token_is_on_no_page_and_in_no_storage_after_its_creation(organization, owner_client):
    ProviderKeyFactory(organization=organization)
    raw = raw_token_of(create(owner_client, organization))
    token = ProxyToken.objects.get(organization=organization)
    middle = raw[4:-4]  # the random part, without the public prefix and the shown last four

    pages = [
        url("tokens:list", organization),
        url("tokens:create", organization),
        url("tokens:revoke", organization, pk=token.pk),
        url("audit:list", organization),
        url("keys:list", organization),
        url("members:list", organization),
        url("settings:index", organization),
        reverse("orgs:list"),
    ]
    for page in pages:
        response = owner_client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        assert middle not in html, page
        assert not TOKEN_PATTERN.search(html), page
    assert "kvp_…" + raw[-4:] in owner_client.get(pages[0]).content.decode()
    stored = stored_beside_pages(owner_client)
    assert middle not in stored
    assert not TOKEN_PATTERN.search(stored)


def test_the_token_from_the_page_authenticates_against_the_api(organization, owner_client, client):
    key = ProviderKeyFactory(organization=organization, name="Prod")
    raw = raw_token_of(create(owner_client, organization))

    ping = api(client, raw)
    assert ping.status_code == 200
    assert ping.json() == {
        "organization": organization.slug,
        "token": "gateway-prod",
        "scopes": ["keys:read", "keys:secret"],
    }
    listing = api(client, raw, "/api/v1/keys")
    assert listing.status_code == 200
    assert str(key.pk) in listing.content.decode()


def test_a_revoked_token_is_refused_by_the_api(organization, owner, owner_client, client):
    raw = raw_token_of(create(owner_client, organization))
    token = ProxyToken.objects.get(organization=organization)
    assert api(client, raw).status_code == 200

    confirm = owner_client.get(url("tokens:revoke", organization, pk=token.pk))
    assert confirm.status_code == 200
    assert "kvp_…" + raw[-4:] in confirm.content.decode()
    assert "refused from the moment it is revoked" in confirm.content.decode()
    response = owner_client.post(
        url("tokens:revoke", organization, pk=token.pk), REMOTE_ADDR=CLIENT_IP
    )

    assert response.status_code == 302
    assert response["Location"] == url("tokens:list", organization)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert api(client, raw).status_code == 401
    assert api(client, raw, "/api/v1/keys").status_code == 401
    event = AuditEvent.objects.get(action=AuditAction.TOKEN_REVOKED)
    assert (event.actor_user, event.ip_address) == (owner, CLIENT_IP)
    assert "Revoked gateway-prod" in owner_client.get(response["Location"]).content.decode()


def test_a_token_with_only_keys_read_cannot_fetch_secrets(organization, owner_client, client):
    key = ProviderKeyFactory(organization=organization)
    raw = raw_token_of(create(owner_client, organization, scopes=["keys:read"]))

    assert api(client, raw, f"/api/v1/keys/{key.pk}").status_code == 200
    assert api(client, raw, f"/api/v1/keys/{key.pk}/secret").status_code == 403


# --- The list ---------------------------------------------------------------------------------


def test_the_list_shows_name_last_four_scopes_dates_and_state(organization, owner, owner_client):
    now = timezone.now()
    active = ProxyTokenFactory(
        organization=organization, name="gateway", scopes=["keys:read"], expires_in_days=30
    )
    ProxyToken.objects.filter(pk=active.pk).update(
        created_by=owner, last_used_at=now - timedelta(hours=2, minutes=1)
    )
    revoked = ProxyTokenFactory(organization=organization, name="old-gateway")
    ProxyToken.objects.filter(pk=revoked.pk).update(revoked_at=now)
    expired = ProxyTokenFactory(organization=organization, name="batch")
    ProxyToken.objects.filter(pk=expired.pk).update(expires_at=now - timedelta(days=1))

    html = owner_client.get(url("tokens:list", organization)).content.decode()

    by_name = rows(html)
    assert set(by_name) == {"gateway", "old-gateway", "batch"}
    row = by_name["gateway"]
    assert f"<code>kvp_…{active.last_four}</code>" in row
    assert re.findall(r'<span class="badge">([^<]+)</span>', row) == ["keys:read"]
    assert f'{now:%Y-%m-%d}</span> <span class="muted">by {owner.email}</span>' in row
    assert "2\xa0hours, 1\xa0minute ago" in row
    assert f"{active.expires_at:%Y-%m-%d}" in row
    assert '<span class="badge ok">active</span>' in row
    assert url("tokens:revoke", organization, pk=active.pk) in row
    assert re.findall(r'<span class="badge">([^<]+)</span>', by_name["old-gateway"]) == [
        "keys:read",
        "keys:secret",
        "keys:write",
    ]
    assert f"revoked {now:%Y-%m-%d}" in by_name["old-gateway"]
    assert "never" in by_name["old-gateway"]  # never used, never expires
    assert url("tokens:revoke", organization, pk=revoked.pk) not in html
    assert '<span class="badge off">expired</span>' in by_name["batch"]
    for token in (active, revoked, expired):
        assert token.raw not in html
        assert token.raw[4:-4] not in html


def test_revoked_tokens_are_listed_apart_below_the_others(organization, owner_client):
    ProxyTokenFactory(organization=organization, name="gateway")
    revoked = ProxyTokenFactory(organization=organization, name="old-gateway")
    ProxyToken.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())

    html = owner_client.get(url("tokens:list", organization)).content.decode()

    current, history = html.split('<h2 id="revoked">Revoked</h2>')
    assert "gateway" in rows(current) and "old-gateway" not in rows(current)
    assert set(rows(history)) == {"old-gateway"}


def test_only_revoked_tokens_say_no_active_ones(organization, owner_client):
    revoked = ProxyTokenFactory(organization=organization, name="old-gateway")
    ProxyToken.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    html = owner_client.get(url("tokens:list", organization)).content.decode()
    assert "No active tokens." in html and "No proxy tokens yet" not in html


def test_the_token_pages_link_the_api_reference(organization, owner_client):
    html = owner_client.get(url("tokens:list", organization)).content.decode()
    assert 'href="/api/v1/docs"' in html and 'href="/api/v1/"' in html
    response = create(owner_client, organization)
    assert 'href="/api/v1/docs"' in response.content.decode()


def test_an_organization_without_tokens_explains_them(organization, owner_client):
    html = owner_client.get(url("tokens:list", organization)).content.decode()

    assert "No proxy tokens yet" in html
    assert url("tokens:create", organization) in html


def test_the_list_shows_only_this_organizations_tokens(
    organization, other_organization, owner_client
):
    ProxyTokenFactory(organization=other_organization, name="elsewhere")

    html = owner_client.get(url("tokens:list", organization)).content.decode()

    assert "elsewhere" not in html


# --- Refused forms create nothing -------------------------------------------------------------


@pytest.fixture
def existing(organization):
    return ProxyTokenFactory(organization=organization, name="gateway-prod")


def field_errors(response, field) -> str:
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, errors
    return " ".join(errors[field])


INVALID = {
    "no scope": (
        {"scopes": None},
        "scopes",
        "Pick at least one scope: a proxy that fetches keys needs keys:read",
    ),
    "unknown scope": ({"scopes": ["keys:admin"]}, "scopes", "Select a valid choice."),
    "expiry 0": ({"expires_in_days": "0"}, "expires_in_days", "greater than or equal to 1"),
    "expiry 99999": (
        {"expires_in_days": "99999"},
        "expires_in_days",
        "less than or equal to 3650",
    ),
    "expiry not a number": ({"expires_in_days": "soon"}, "expires_in_days", "whole number"),
    "duplicate active name": (
        {"name": "GATEWAY-prod"},
        "name",
        "An active token named 'GATEWAY-prod' already exists.",
    ),
    "blank name": ({"name": "  "}, "name", "This field is required."),
}


@pytest.mark.parametrize(("fields", "field", "message"), INVALID.values(), ids=INVALID.keys())
def test_invalid_token_forms_show_the_error_on_the_field_and_create_nothing(
    organization, owner_client, existing, fields, field, message
):
    tokens, events = ProxyToken.objects.count(), AuditEvent.objects.count()

    response = create(owner_client, organization, **fields)

    assert message in field_errors(response, field)
    html = response.content.decode()
    assert "keyvault/tokens/create.html" in [t.name for t in response.templates]
    block = re.split(r'(?=<div class="field[ "])', html)
    [mine] = [b for b in block if f'name="{field}"' in b]
    assert "has-error" in mine.split(">", 1)[0]
    assert not TOKEN_PATTERN.search(html)
    assert (ProxyToken.objects.count(), AuditEvent.objects.count()) == (tokens, events)


def test_a_revoked_tokens_name_can_be_used_again(organization, owner_client, existing):
    ProxyToken.objects.filter(pk=existing.pk).update(revoked_at=timezone.now())

    response = create(owner_client, organization)

    assert response.status_code == 200
    assert ProxyToken.objects.filter(name="gateway-prod", revoked_at__isnull=True).count() == 1
