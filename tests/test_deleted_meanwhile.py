"""A key, token or organization deleted by another request after this one read it.

Two clicks of Delete, or a delete and an edit, arrive together: both requests find the row and
pass their checks, one deletes it, and the other's service then finds nothing under its lock.
That answers like any missing object (a 404 from the API, a message on the pages and in the
admin, one line from a command), never a server error. These tests delete the row at exactly
that moment, on each surface; tests/test_live_traffic.py races real requests on PostgreSQL.
"""

from io import StringIO

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.management import CommandError, call_command
from django.urls import reverse

from audit import AuditAction
from audit.models import AuditEvent
from core.errors import NotFoundError
from keyvault import services
from keyvault.models import ProviderKey, ProxyToken
from organizations import services as org_services
from organizations.access import Access
from organizations.models import Organization
from tests.factories import ProviderKeyFactory
from tests.helpers import messages_of, url

pytestmark = pytest.mark.django_db

KEYS = "/admin/keyvault/providerkey/"
ORGS = "/admin/organizations/organization/"
NEW_SECRET = "sk-proj-N3wS3cretTypedWhileItWasDeletedAbCdEf"


@pytest.fixture
def deleted_meanwhile(monkeypatch):
    """`deleted_meanwhile(row, services, "provider_key_delete")`: the next call of that
    function first finds `row` deleted by another request, after the caller read it (with
    `after=True`, the row goes just after the call instead)."""

    def arm(row, module, name, *, after=False):
        real = getattr(module, name)

        def racing(*args, **kwargs):
            monkeypatch.setattr(module, name, real)
            result = real(*args, **kwargs) if after else None
            type(row).objects.filter(pk=row.pk).delete()
            return result if after else real(*args, **kwargs)

        monkeypatch.setattr(module, name, racing)

    return arm


@pytest.fixture
def key(organization):
    return ProviderKeyFactory(organization=organization, name="Doomed")


def shown(client, response) -> str:
    """The page a redirect leads to, with its messages."""
    assert response.status_code == 302, response.status_code
    return client.get(response["Location"]).content.decode()


# --- The services -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda key, actor: services.provider_key_delete(key=key, actor=actor),
        lambda key, actor: services.provider_key_update(key=key, actor=actor, name="New"),
        lambda key, actor: services.provider_key_rotate(key=key, actor=actor, secret=NEW_SECRET),
        lambda key, actor: services.provider_key_update(
            key=key, actor=actor, enabled=False, secret=NEW_SECRET
        ),
    ],
    ids=["delete", "update", "rotate", "update with a secret"],
)
def test_a_write_to_a_key_deleted_meanwhile_raises_not_found_and_audits_nothing(key, call):
    stale = ProviderKey.objects.get(pk=key.pk)
    ProviderKey.objects.filter(pk=key.pk).delete()
    events = AuditEvent.objects.count()

    with pytest.raises(NotFoundError, match="'Doomed' no longer exists"):
        call(stale, Access.operator("tests"))

    assert AuditEvent.objects.count() == events


def test_revoking_a_token_deleted_meanwhile_raises_not_found(make_token):
    token = make_token()
    ProxyToken.objects.filter(pk=token.pk).delete()
    with pytest.raises(NotFoundError, match="no longer exists"):
        services.proxy_token_revoke(token=token, actor=Access.operator("tests"))


def test_deleting_an_organization_deleted_meanwhile_raises_not_found_and_audits_nothing(
    organization, key
):
    stale = Organization.objects.get(pk=organization.pk)
    org_services.organization_delete(organization=organization, actor=Access.operator("tests"))
    events = AuditEvent.objects.count()

    with pytest.raises(NotFoundError):
        org_services.organization_delete(organization=stale, actor=Access.operator("tests"))

    assert AuditEvent.objects.count() == events
    assert AuditEvent.objects.filter(action=AuditAction.ORGANIZATION_DELETED).count() == 1


# --- The pages --------------------------------------------------------------------------------


def test_a_second_delete_on_the_page_says_the_key_is_already_deleted(
    organization, key, owner_client, deleted_meanwhile
):
    deleted_meanwhile(key, services, "provider_key_delete")
    response = owner_client.post(url("keys:delete", organization, pk=key.pk))

    assert response["Location"] == url("keys:list", organization)
    assert "Doomed was already deleted." in shown(owner_client, response)
    assert not ProviderKey.objects.filter(pk=key.pk).exists()


@pytest.mark.parametrize(
    ("view", "service", "data"),
    [
        ("keys:edit", "provider_key_update", {"name": "Renamed", "enabled": "on"}),
        ("keys:rotate", "provider_key_rotate", {"secret": NEW_SECRET}),
    ],
)
def test_saving_a_key_deleted_meanwhile_on_the_page_says_so_and_saves_nothing(
    organization, key, owner_client, deleted_meanwhile, view, service, data
):
    deleted_meanwhile(key, services, service)
    response = owner_client.post(url(view, organization, pk=key.pk), data)

    assert response["Location"] == url("keys:list", organization)
    assert "Doomed was deleted meanwhile; nothing was saved." in shown(owner_client, response)
    assert not ProviderKey.objects.exists()


def test_revoking_a_token_deleted_meanwhile_on_the_page_says_so(
    organization, make_token, owner_client, deleted_meanwhile
):
    token = make_token()
    deleted_meanwhile(token, services, "proxy_token_revoke")
    response = owner_client.post(url("tokens:revoke", organization, pk=token.pk))

    assert f"{token} no longer exists." in shown(owner_client, response)


def test_a_second_delete_of_an_organization_on_the_page_says_it_is_already_deleted(
    organization, key, owner_client, deleted_meanwhile
):
    # Deleted by another owner just after this request was authorized.
    deleted_meanwhile(organization, org_services, "authorize", after=True)
    response = owner_client.post(
        url("settings:delete", organization), {"confirmation": organization.slug}
    )

    assert response["Location"] == reverse("orgs:list")
    assert f"{organization.name} was already deleted." in shown(owner_client, response)
    assert not Organization.objects.filter(pk=organization.pk).exists()


# --- The API ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "service", "body"),
    [("delete", "provider_key_delete", None), ("patch", "provider_key_update", {"name": "New"})],
)
def test_the_api_answers_json_404_for_a_key_deleted_meanwhile(
    api_client, make_token, key, deleted_meanwhile, method, service, body
):
    token = make_token()
    deleted_meanwhile(key, services, service)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.raw}")

    response = getattr(api_client, method)(f"/api/v1/keys/{key.pk}", body, format="json")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


# --- The admin --------------------------------------------------------------------------------


@pytest.fixture
def admin_client(owner, signed_in):
    return signed_in(owner)


def test_the_admin_delete_page_of_a_key_deleted_meanwhile_says_so(
    key, admin_client, deleted_meanwhile
):
    deleted_meanwhile(key, services, "provider_key_delete")
    response = admin_client.post(f"{KEYS}{key.pk}/delete/", {"post": "yes"})

    assert response["Location"] == KEYS
    assert messages_of(admin_client) == ["The key 'Doomed' no longer exists."]


def test_the_admin_change_form_of_a_key_deleted_meanwhile_shows_the_error(
    key, admin_client, form_data, deleted_meanwhile
):
    url = f"{KEYS}{key.pk}/change/"
    data = {**form_data(admin_client.get(url)), "name": "Renamed"}
    deleted_meanwhile(key, services, "provider_key_update")

    response = admin_client.post(url, data)

    # Shown as the form's error. (The admin's transaction, rolled back for a refused form,
    # takes the deletion staged here with it: in life it was another request's.)
    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors() == [
        "The key 'Doomed' no longer exists."
    ]


@pytest.mark.parametrize(
    ("action", "service"),
    [("delete_selected", "provider_key_delete"), ("disable_keys", "provider_key_update")],
)
def test_admin_actions_skip_a_key_deleted_meanwhile(
    organization, key, admin_client, deleted_meanwhile, action, service
):
    other = ProviderKeyFactory(organization=organization, name="Other")
    deleted_meanwhile(key, services, service)
    selected = {ACTION_CHECKBOX_NAME: sorted([str(key.pk), str(other.pk)]), "index": "0"}

    response = admin_client.post(KEYS, {"action": action, "post": "yes", **selected})

    assert response.status_code == 302
    assert not ProviderKey.objects.filter(pk=key.pk).exists()
    if action == "delete_selected":
        assert not ProviderKey.objects.exists()
    else:
        assert ProviderKey.objects.get(pk=other.pk).enabled is False


def test_the_admin_delete_page_of_an_organization_deleted_meanwhile_says_so(
    organization, admin_client, deleted_meanwhile
):
    # Deleted by another owner just after this request was authorized.
    deleted_meanwhile(organization, org_services, "authorize", after=True)
    response = admin_client.post(f"{ORGS}{organization.pk}/delete/", {"post": "yes"})

    assert response["Location"] == ORGS
    assert f"The organization {organization.name!r} no longer exists." in messages_of(admin_client)


# --- Commands ---------------------------------------------------------------------------------


def test_revoke_token_for_a_token_deleted_meanwhile_is_one_line(
    organization, make_token, deleted_meanwhile
):
    token = make_token()
    deleted_meanwhile(token, services, "proxy_token_revoke")

    with pytest.raises(CommandError) as excinfo:
        call_command(
            "revoke_token", "--org", organization.slug, "--name", token.name, stdout=StringIO()
        )

    assert str(excinfo.value) == f"The token {token.name!r} no longer exists."
