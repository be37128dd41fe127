"""Writing through the Django admin: every save goes through the services (validation, rules,
audit), secrets and tokens never come back out, the audit trail is read-only, and re-wrapping
under the primary KEK is for superusers only."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import LogEntry

from audit import AuditAction
from audit.models import AuditEvent
from core.tokens import token_digest
from keyvault import services
from keyvault.models import ProviderKey, ProxyToken
from organizations.access import Access
from organizations.invitations import invitation_accept
from organizations.models import Invitation, Membership, Organization
from tests.factories import ProviderKeyFactory, UserFactory
from tests.helpers import TOKEN_PATTERN, key_row, messages_of, stored_beside_pages

pytestmark = pytest.mark.django_db

KEYS = "/admin/keyvault/providerkey/"
TOKENS = "/admin/keyvault/proxytoken/"
EVENTS = "/admin/audit/auditevent/"
MEMBERS = "/admin/organizations/membership/"
ORGS = "/admin/organizations/organization/"

SECRET = "sk-proj-Adm1nF0rmS3cretQwErTyUiOpAsDfGhJkL"
NEW_SECRET = "sk-proj-R0tat3dS3cretZxCvBnMmLkJhGfDsAqWe"
AZURE_CONFIG = {
    "endpoint": "https://alpha.openai.azure.com",
    "deployment": "gpt-4o",
    "api_version": "2024-06-01",
}


@pytest.fixture
def a(tenants):
    return tenants.a


@pytest.fixture
def admin(a, signed_in):
    """Signed in as the admin (not owner) of A."""
    return signed_in(a.admin)


@pytest.fixture
def owner(a, signed_in):
    return signed_in(a.owner)


def events_since(count: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("created_at", "id")[count:])


def add_key(client, organization, **fields):
    data = {
        "organization": str(organization.pk),
        "provider": "openai",
        "name": "Admin Key",
        "new_secret": SECRET,
        "enabled": "on",
        **fields,
    }
    return client.post(f"{KEYS}add/", {k: v for k, v in data.items() if v is not None})


def change(client, url, form_data, **changes):
    data = form_data(client.get(url))
    data.update(changes)
    return client.post(url, {k: v for k, v in data.items() if v is not None})


def form_errors(response) -> dict:
    assert response.status_code == 200, response.status_code
    errors = response.context["adminform"].form.errors
    assert errors
    return errors


# --- Provider keys: the same services, the same audit -----------------------------------------


def test_key_lifecycle_through_the_admin_writes_the_services_audit_events(a, admin, form_data):
    before = AuditEvent.objects.count()

    assert add_key(admin, a.org).status_code == 302
    key = ProviderKey.objects.get(organization=a.org, name="Admin Key")
    url = f"{KEYS}{key.pk}/change/"
    assert change(admin, url, form_data, name="Renamed Key").status_code == 302
    assert change(admin, url, form_data, new_secret=NEW_SECRET).status_code == 302
    rotated = ProviderKey.objects.get(pk=key.pk)
    assert admin.post(f"{KEYS}{key.pk}/delete/", {"post": "yes"}).status_code == 302

    events = events_since(before)
    assert [e.action for e in events] == [
        AuditAction.KEY_CREATED,
        AuditAction.KEY_UPDATED,
        AuditAction.KEY_ROTATED,
        AuditAction.KEY_DELETED,
    ]
    assert {(e.actor_label, e.actor_user_id, e.target_id) for e in events} == {
        (a.admin.email, a.admin.pk, str(key.pk))
    }
    assert (key.version, rotated.version) == (1, 2)
    assert rotated.name == "Renamed Key"
    assert services.provider_key_reveal(key=rotated, actor=Access.operator("tests")) == NEW_SECRET
    assert not ProviderKey.objects.filter(pk=key.pk).exists()

    # The same calls made directly on the services leave events of the same shape.
    twin = services.provider_key_create(
        organization=a.org,
        actor=Access.for_user(a.admin),
        provider="openai",
        name="Twin",
        secret=SECRET,
    )
    twin = services.provider_key_update(key=twin, actor=Access.for_user(a.admin), name="Twin 2")
    twin = services.provider_key_rotate(key=twin, actor=Access.for_user(a.admin), secret=NEW_SECRET)
    services.provider_key_delete(key=twin, actor=Access.for_user(a.admin))
    direct = events_since(before + len(events))
    assert [(e.action, e.target_type, sorted(e.metadata)) for e in direct] == [
        (e.action, e.target_type, sorted(e.metadata)) for e in events
    ]


def test_enable_and_disable_actions_write_provider_key_updated(a, admin):
    before = AuditEvent.objects.count()
    ids = {ACTION_CHECKBOX_NAME: [str(a.key.pk)], "index": "0"}

    admin.post(KEYS, {"action": "disable_keys", **ids})
    assert ProviderKey.objects.get(pk=a.key.pk).enabled is False
    admin.post(KEYS, {"action": "enable_keys", **ids})
    assert ProviderKey.objects.get(pk=a.key.pk).enabled is True

    events = events_since(before)
    assert [e.action for e in events] == [AuditAction.KEY_UPDATED] * 2
    assert [e.metadata["changes"]["enabled"]["to"] for e in events] == [False, True]
    assert {e.actor_label for e in events} == {a.admin.email}


# --- Provider keys: secrets never come back out ---------------------------------------------------


def test_secret_typed_in_the_admin_appears_on_no_page_history_or_message(
    a, admin, form_data, raw_envelope
):
    assert add_key(admin, a.org).status_code == 302
    key = ProviderKey.objects.get(organization=a.org, name="Admin Key")
    assert any(key.secret_hint in m for m in messages_of(admin))
    assert SECRET not in stored_beside_pages(admin)

    url = f"{KEYS}{key.pk}/change/"
    assert change(admin, url, form_data, new_secret=NEW_SECRET).status_code == 302
    rotated = ProviderKey.objects.get(pk=key.pk)
    assert rotated.version == 2
    stored = stored_beside_pages(admin)
    assert rotated.secret_hint in stored

    key_pages = [
        admin.get(KEYS),
        admin.get(KEYS, {"q": "Admin"}),
        admin.get(url),
        admin.get(f"{KEYS}{key.pk}/history/"),
        admin.get(f"{KEYS}{key.pk}/delete/"),
        admin.post(KEYS, {"action": "delete_selected", ACTION_CHECKBOX_NAME: [str(key.pk)]}),
    ]
    audit_pages = [
        admin.get(EVENTS),
        admin.get(f"{EVENTS}{AuditEvent.objects.latest('id').pk}/change/"),
    ]
    for page in key_pages + audit_pages:
        assert page.status_code == 200
        text = page.content.decode()
        assert page not in key_pages or rotated.secret_hint in text
        for secret in (SECRET, NEW_SECRET):
            assert secret not in text
            assert secret[8:-4] not in text  # not even the middle of it
    for secret in (SECRET, NEW_SECRET):
        assert secret not in stored
        assert secret[8:-4] not in raw_envelope(rotated)


def test_secret_is_not_echoed_when_the_form_is_refused(a, admin):
    response = add_key(admin, a.org, name="")

    form_errors(response)
    assert SECRET not in response.content.decode()


# --- Provider keys: bad input leaves everything as it was ---------------------------------------


@pytest.mark.parametrize(
    ("fields", "error_field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"new_secret": "   "}, "new_secret"),
        ({"new_secret": ""}, "new_secret"),
        ({"name": "ALPHA-KEY"}, "name"),
        ({"is_default": "on"}, "is_default"),
        (
            {
                "provider": "azure_openai",
                "config_deployment": "d",
                "config_api_version": "2024-06-01",
            },
            "config_endpoint",
        ),
        ({"config_project": "not a project id"}, "config_project"),
        ({"provider": "nope", "config": "not json"}, "provider"),
    ],
    ids=[
        "empty-name",
        "blank-name",
        "whitespace-secret",
        "no-secret",
        "duplicate-name",
        "second-default",
        "azure-without-endpoint",
        "config-against-schema",
        "unknown-provider",
    ],
)
def test_bad_input_on_add_rerenders_with_errors_and_writes_nothing(a, admin, fields, error_field):
    services.provider_key_update(key=a.key, actor=Access.operator("tests"), is_default=True)
    keys, events, log = ProviderKey.objects.count(), AuditEvent.objects.count(), LogEntry.objects
    log_count = log.count()

    errors = form_errors(add_key(admin, a.org, **fields))

    if error_field:
        assert error_field in errors
    assert (ProviderKey.objects.count(), AuditEvent.objects.count()) == (keys, events)
    assert log.count() == log_count


@pytest.fixture
def siblings(a):
    """A second OpenAI key of A, the default one, and an Azure key."""
    return {
        "default": ProviderKeyFactory(organization=a.org, name="Default key", is_default=True),
        "azure": ProviderKeyFactory(
            organization=a.org,
            provider="azure_openai",
            name="Azure key",
            secret="0123456789abcdef0123456789abcdef",
            config=AZURE_CONFIG,
        ),
    }


@pytest.mark.parametrize(
    ("target", "changes", "error_field"),
    [
        ("key", {"name": ""}, "name"),
        ("key", {"name": "default KEY"}, "name"),
        ("key", {"is_default": "on"}, "is_default"),
        ("key", {"config_base_url": "not a url"}, "config_base_url"),
        ("key", {"name": "Renamed", "new_secret": "   "}, "new_secret"),
        ("azure", {"config_endpoint": ""}, "config_endpoint"),
    ],
    ids=[
        "empty-name",
        "duplicate-name",
        "second-default",
        "config-against-schema",
        "rename-with-blank-secret",
        "azure-without-endpoint",
    ],
)
def test_bad_input_on_change_leaves_the_row_and_audit_unchanged(
    a, admin, form_data, siblings, target, changes, error_field
):
    key = a.key if target == "key" else siblings[target]
    before, events, log_count = key_row(key), AuditEvent.objects.count(), LogEntry.objects.count()

    errors = form_errors(change(admin, f"{KEYS}{key.pk}/change/", form_data, **changes))

    if error_field:
        assert error_field in errors
    assert key_row(key) == before
    assert (AuditEvent.objects.count(), LogEntry.objects.count()) == (events, log_count)


# --- Proxy tokens -----------------------------------------------------------------------------


def test_token_created_in_the_admin_is_shown_exactly_once(a, admin):
    before = AuditEvent.objects.count()
    response = admin.post(
        f"{TOKENS}add/",
        {
            "organization": str(a.org.pk),
            "name": "ci-proxy",
            "token_scopes": ["keys:read", "keys:secret"],
            "expires_in_days": "30",
        },
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    (raw,) = set(TOKEN_PATTERN.findall(page))
    assert page.count(raw) == 1
    token = ProxyToken.objects.get(organization=a.org, name="ci-proxy")
    assert token.digest == token_digest(raw)
    assert token.last_four == raw[-4:]
    assert token.scopes == ["keys:read", "keys:secret"]
    for field in ProxyToken._meta.concrete_fields:
        assert raw not in str(getattr(token, field.attname))
    [event] = events_since(before)
    assert (event.action, event.actor_label) == (AuditAction.TOKEN_CREATED, a.admin.email)

    afterwards = [
        admin.get(TOKENS),
        admin.get(f"{TOKENS}{token.pk}/change/"),
        admin.get(f"{TOKENS}{token.pk}/history/"),
        admin.get(EVENTS),
        admin.get(f"{EVENTS}{event.pk}/change/"),
        admin.get("/admin/"),
    ]
    for later in afterwards:
        assert later.status_code == 200
        assert raw not in later.content.decode()
        assert raw[4:-4] not in later.content.decode()
    assert raw not in stored_beside_pages(admin)
    assert LogEntry.objects.filter(object_id=str(token.pk)).exists()


def test_token_form_with_bad_input_writes_nothing(a, admin):
    tokens, events = ProxyToken.objects.count(), AuditEvent.objects.count()
    for data in (
        {"name": "", "token_scopes": ["keys:read"]},
        {"name": "no-scopes"},
        {"name": "alpha-token", "token_scopes": ["keys:read"]},  # an active token's name
        {"name": "bad-expiry", "token_scopes": ["keys:read"], "expires_in_days": "0"},
    ):
        response = admin.post(f"{TOKENS}add/", {"organization": str(a.org.pk), **data})
        form_errors(response)
        assert not TOKEN_PATTERN.search(response.content.decode())
    assert (ProxyToken.objects.count(), AuditEvent.objects.count()) == (tokens, events)


def test_revoke_action_writes_proxy_token_revoked(a, admin):
    before = AuditEvent.objects.count()
    selected = {ACTION_CHECKBOX_NAME: [str(a.token.pk)], "index": "0"}

    admin.post(TOKENS, {"action": "revoke_tokens", **selected})
    admin.post(TOKENS, {"action": "revoke_tokens", **selected})  # twice: a no-op

    assert ProxyToken.objects.get(pk=a.token.pk).revoked_at is not None
    [event] = events_since(before)
    assert (event.action, event.actor_label) == (AuditAction.TOKEN_REVOKED, a.admin.email)


def test_token_cannot_be_edited_or_deleted(a, admin):
    url = f"{TOKENS}{a.token.pk}/change/"
    assert 'name="_save"' not in admin.get(url).content.decode()
    assert admin.post(url, {"name": "renamed"}).status_code == 403
    assert admin.post(f"{TOKENS}{a.token.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ProxyToken.objects.get(pk=a.token.pk).name == "alpha-token"


# --- Memberships ------------------------------------------------------------------------------


def test_member_lifecycle_through_the_admin_writes_the_services_audit_events(a, admin, form_data):
    before = AuditEvent.objects.count()

    response = admin.post(
        f"{MEMBERS}add/",
        {"organization": str(a.org.pk), "email": " New.Person@Example.com ", "role": "member"},
    )
    assert response.status_code == 302
    # Adding is inviting: nobody is a member before accepting the emailed link.
    assert not Membership.objects.filter(user__email="new.person@example.com").exists()
    invitation = Invitation.objects.get(organization=a.org, email="new.person@example.com")
    invitee = UserFactory(email="new.person@example.com")
    membership = invitation_accept(invitation=invitation, user=invitee)

    url = f"{MEMBERS}{membership.pk}/change/"
    assert change(admin, url, form_data, role="viewer").status_code == 302
    assert Membership.objects.get(pk=membership.pk).role == "viewer"
    assert admin.post(f"{MEMBERS}{membership.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()

    events = events_since(before)
    assert [(e.action, e.actor_label) for e in events] == [
        (AuditAction.INVITATION_CREATED, a.admin.email),
        (AuditAction.MEMBER_ADDED, invitee.email),
        (AuditAction.INVITATION_ACCEPTED, invitee.email),
        (AuditAction.MEMBER_ROLE_CHANGED, a.admin.email),
        (AuditAction.MEMBER_REMOVED, a.admin.email),
    ]
    assert [e.metadata.get("role", e.metadata.get("to")) for e in events] == [
        "member",
        "member",
        "member",
        "viewer",
        "viewer",
    ]


def test_adding_someone_already_a_member_is_a_form_error(a, admin):
    events, invited = AuditEvent.objects.count(), Invitation.objects.count()
    response = admin.post(
        f"{MEMBERS}add/", {"organization": str(a.org.pk), "email": a.member.email, "role": "viewer"}
    )
    assert "already a member" in " ".join(form_errors(response)["email"])
    assert Membership.objects.get(organization=a.org, user=a.member).role == "member"
    assert (AuditEvent.objects.count(), Invitation.objects.count()) == (events, invited)


def test_admin_is_not_offered_owner_and_cannot_grant_it(a, admin, form_data):
    members, events = Membership.objects.count(), AuditEvent.objects.count()
    invited = Invitation.objects.count()
    add_page = admin.get(f"{MEMBERS}add/")
    offered = [value for value, _ in add_page.context["adminform"].form.fields["role"].choices]
    assert "owner" not in offered
    assert "admin" in offered

    response = admin.post(
        f"{MEMBERS}add/", {"organization": str(a.org.pk), "email": "x@example.com", "role": "owner"}
    )
    assert "role" in form_errors(response)

    member = Membership.objects.get(organization=a.org, user=a.member)
    response = change(admin, f"{MEMBERS}{member.pk}/change/", form_data, role="owner")
    assert "role" in form_errors(response)
    assert Membership.objects.get(pk=member.pk).role == "member"
    assert (Membership.objects.count(), AuditEvent.objects.count()) == (members, events)
    assert Invitation.objects.count() == invited


def test_admin_cannot_change_or_remove_an_owner(a, admin):
    owner = Membership.objects.get(organization=a.org, user=a.owner)
    url = f"{MEMBERS}{owner.pk}/change/"

    page = admin.get(url)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert admin.post(url, {"role": "viewer"}).status_code == 403
    assert admin.post(f"{MEMBERS}{owner.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Membership.objects.get(pk=owner.pk).role == "owner"


def test_last_owner_cannot_be_removed_or_demoted(a, owner, form_data):
    membership = Membership.objects.get(organization=a.org, user=a.owner)
    events, log_count = AuditEvent.objects.count(), LogEntry.objects.count()

    response = owner.post(f"{MEMBERS}{membership.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert any("at least one owner" in m for m in messages_of(owner))
    demote = change(owner, f"{MEMBERS}{membership.pk}/change/", form_data, role="admin")
    assert "role" in form_errors(demote)

    assert Membership.objects.get(pk=membership.pk).role == "owner"
    assert (AuditEvent.objects.count(), LogEntry.objects.count()) == (events, log_count)


def test_owner_may_grant_owner(a, owner, form_data):
    member = Membership.objects.get(organization=a.org, user=a.member)
    assert (
        change(owner, f"{MEMBERS}{member.pk}/change/", form_data, role="owner").status_code == 302
    )
    assert Membership.objects.get(pk=member.pk).role == "owner"


# --- Organizations ----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "superuser"])
def test_owner_renames_the_organization(a, signed_in, superuser, form_data, who):
    user = a.owner if who == "owner" else superuser
    client = signed_in(user)
    before = AuditEvent.objects.count()
    page = client.get(f"{ORGS}{a.org.pk}/change/")
    assert "alpha-member@example.com" in page.content.decode()  # the memberships inline

    response = change(client, f"{ORGS}{a.org.pk}/change/", form_data, name="  Alpha Renamed ")

    assert response.status_code == 302
    assert Organization.objects.get(pk=a.org.pk).name == "Alpha Renamed"
    [event] = events_since(before)
    assert (event.action, event.actor_label) == (AuditAction.ORGANIZATION_RENAMED, user.email)
    assert event.metadata == {"from": "Alpha Org", "to": "Alpha Renamed"}


def test_refused_inline_leaves_the_rename_undone(a, owner, form_data):
    """The rename runs during form validation; if the memberships inline is then refused (a
    tampered management form), the page re-renders and the rename must not stay behind."""
    before = AuditEvent.objects.count()
    data = form_data(owner.get(f"{ORGS}{a.org.pk}/change/"))
    data = {k: v for k, v in data.items() if "FORMS" not in k}
    data["name"] = "Alpha Renamed"

    response = owner.post(f"{ORGS}{a.org.pk}/change/", data)

    assert response.status_code == 200
    assert Organization.objects.get(pk=a.org.pk).name == "Alpha Org"
    assert AuditEvent.objects.count() == before


def test_bad_rename_is_a_form_error(a, owner, form_data):
    before = AuditEvent.objects.count()
    for name in ("", "   ", "x" * 101):
        form_errors(change(owner, f"{ORGS}{a.org.pk}/change/", form_data, name=name))
    assert Organization.objects.get(pk=a.org.pk).name == "Alpha Org"
    assert AuditEvent.objects.count() == before


def test_admin_cannot_rename_or_delete_the_organization(a, admin):
    url = f"{ORGS}{a.org.pk}/change/"
    page = admin.get(url)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert admin.post(url, {"name": "Hijacked"}).status_code == 403
    assert admin.get(f"{ORGS}{a.org.pk}/delete/").status_code == 403
    assert admin.post(f"{ORGS}{a.org.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin.get(f"{ORGS}add/").status_code == 403
    assert Organization.objects.get(pk=a.org.pk).name == "Alpha Org"


def test_owner_deletes_the_organization_with_its_keys(tenants, owner):
    a = tenants.a
    key_ids = list(a.org.provider_keys.values_list("pk", flat=True))
    assert key_ids

    confirm = owner.get(f"{ORGS}{a.org.pk}/delete/")
    assert confirm.status_code == 200
    assert "alpha-key" in confirm.content.decode()
    assert owner.post(f"{ORGS}{a.org.pk}/delete/", {"post": "yes"}).status_code == 302

    assert not Organization.objects.filter(pk=a.org.pk).exists()
    assert not ProviderKey.objects.filter(pk__in=key_ids).exists()
    assert not ProxyToken.objects.filter(organization_id=a.org.pk).exists()
    event = AuditEvent.objects.get(action=AuditAction.ORGANIZATION_DELETED)
    assert (event.target_id, event.actor_label) == (str(a.org.pk), a.owner.email)
    assert event.metadata == {"slug": "alpha", "keys": len(key_ids)}
    assert ProviderKey.objects.filter(pk=tenants.b.key.pk).exists()


# --- The audit trail is read-only, superusers included ----------------------------------------


@pytest.mark.parametrize("who", ["org-admin", "superuser"])
def test_audit_events_are_read_only_for_everyone(a, signed_in, superuser, who):
    client = signed_in(a.admin if who == "org-admin" else superuser)
    event = a.events[0]
    snapshot = AuditEvent.objects.filter(pk=event.pk).values().get()
    count = AuditEvent.objects.count()
    url = f"{EVENTS}{event.pk}/change/"

    assert client.get(f"{EVENTS}add/").status_code == 403
    page = client.get(url)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert client.post(url, {"action": "forged", "actor_label": "nobody"}).status_code == 403
    assert client.get(f"{EVENTS}{event.pk}/delete/").status_code == 403
    assert client.post(f"{EVENTS}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    changelist = client.get(EVENTS)
    assert "delete_selected" not in changelist.content.decode()
    client.post(
        EVENTS, {"action": "delete_selected", ACTION_CHECKBOX_NAME: [str(event.pk)], "post": "yes"}
    )

    assert AuditEvent.objects.filter(pk=event.pk).values().get() == snapshot
    assert AuditEvent.objects.count() == count


# --- Re-wrapping under the primary KEK: superusers only ---------------------------------------


@pytest.fixture
def old_keys(tenants, old_kek_first):
    secrets = {}
    with old_kek_first():
        for world in (tenants.a, tenants.b):
            secret = f"sk-proj-{world.org.slug}0ldKekS3cret0123456789abcdef"
            key = ProviderKeyFactory(organization=world.org, name="sealed-old", secret=secret)
            secrets[key.pk] = secret
    assert set(ProviderKey.objects.filter(pk__in=secrets).values_list("kek_id", flat=True)) == {
        "test-old"
    }
    return secrets


def test_superuser_rewraps_selected_keys_under_the_primary(old_keys, signed_in, superuser):
    client = signed_in(superuser)
    offered = client.get(KEYS).context["action_form"].fields["action"].choices
    assert "rewrap_under_primary" in dict(offered)

    response = client.post(
        KEYS,
        {
            "action": "rewrap_under_primary",
            ACTION_CHECKBOX_NAME: [str(pk) for pk in old_keys],
            "index": "0",
        },
    )

    assert response.status_code == 302
    assert any("2 keys re-wrapped under test-primary" in m for m in messages_of(client))
    event = AuditEvent.objects.get(action=AuditAction.KEK_ROTATION)
    assert event.actor_label == superuser.email
    assert (event.metadata["primary"], event.metadata["rewrapped"]) == ("test-primary", 2)
    for pk, secret in old_keys.items():
        key = ProviderKey.objects.get(pk=pk)
        assert key.kek_id == "test-primary"
        assert key.version == 1
        assert services.provider_key_reveal(key=key, actor=Access.operator("tests")) == secret


def test_the_admin_records_the_same_rotation_event_as_rotate_kek(old_keys, signed_in, superuser):
    client = signed_in(superuser)
    client.post(
        KEYS,
        {
            "action": "rewrap_under_primary",
            ACTION_CHECKBOX_NAME: [str(pk) for pk in old_keys],
            "index": "0",
        },
    )
    # One service writes the event for both: the same fields, the run's own counts.
    event = AuditEvent.objects.get(action=AuditAction.KEK_ROTATION)
    assert event.metadata == {
        "primary": "test-primary",
        "rewrapped": 2,
        "changed_concurrently": 0,
        "failed": 0,
        "interrupted": False,
    }


def test_a_database_error_during_the_rewrap_action_is_a_message_not_a_server_error(
    old_keys, signed_in, superuser, monkeypatch
):
    from django.db import OperationalError

    from keyvault import rotation

    real_batch = rotation.rewrap_batch
    calls = []

    def connection_lost_on_the_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OperationalError("server closed the connection unexpectedly")
        # One key a batch, so that the first batch commits before the error.
        return real_batch(*args, **{**kwargs, "batch_size": 1})

    monkeypatch.setattr(rotation, "rewrap_batch", connection_lost_on_the_second_batch)
    client = signed_in(superuser)
    response = client.post(
        KEYS,
        {
            "action": "rewrap_under_primary",
            ACTION_CHECKBOX_NAME: [str(pk) for pk in old_keys],
            "index": "0",
        },
    )

    assert response.status_code == 302
    assert any(
        "Stopped by a database error after 1 keys re-wrapped under test-primary" in m
        for m in messages_of(client)
    )
    # The committed batch stays and is on the trail; the other key is as it was.
    kek_ids = sorted(ProviderKey.objects.filter(pk__in=old_keys).values_list("kek_id", flat=True))
    assert kek_ids == ["test-old", "test-primary"]
    event = AuditEvent.objects.get(action=AuditAction.KEK_ROTATION)
    assert (event.metadata["rewrapped"], event.metadata["interrupted"]) == (1, True)
    for pk, secret in old_keys.items():
        key = ProviderKey.objects.get(pk=pk)
        assert services.provider_key_reveal(key=key, actor=Access.operator("tests")) == secret


def test_org_admin_has_no_rewrap_action(a, old_keys, admin, owner):
    for client in (admin, owner):
        offered = client.get(KEYS).context["action_form"].fields["action"].choices
        assert "rewrap_under_primary" not in dict(offered)
        assert "disable_keys" in dict(offered)
        client.post(
            KEYS,
            {
                "action": "rewrap_under_primary",
                ACTION_CHECKBOX_NAME: [str(pk) for pk in old_keys],
                "index": "0",
            },
        )

    kek_ids = set(ProviderKey.objects.filter(pk__in=old_keys).values_list("kek_id", flat=True))
    assert kek_ids == {"test-old"}
    assert not AuditEvent.objects.filter(action=AuditAction.KEK_ROTATION).exists()


# --- Provider keys: the provider's settings, one input each --------------------------------------


def test_the_add_form_asks_for_a_chosen_providers_settings_one_by_one(a, admin):
    html = admin.get(f"{KEYS}add/?provider=azure_openai").content.decode()
    for name in ("endpoint", "deployment", "api_version"):
        assert f'name="config_{name}"' in html
    assert 'name="config"' not in html
    chooser = admin.get(f"{KEYS}add/").content.decode()
    assert 'href="?provider=azure_openai"' in chooser


def test_a_key_added_with_per_provider_fields_stores_its_config(a, admin):
    response = add_key(
        admin,
        a.org,
        provider="azure_openai",
        name="Azure",
        new_secret="0123456789abcdef0123456789abcdef",
        **{f"config_{name}": value for name, value in AZURE_CONFIG.items()},
    )
    assert response.status_code == 302
    assert ProviderKey.objects.get(organization=a.org, name="Azure").config == AZURE_CONFIG


def test_the_change_form_shows_and_changes_the_settings_by_field(a, admin, form_data, siblings):
    key = siblings["azure"]
    url = f"{KEYS}{key.pk}/change/"
    page = admin.get(url)
    assert page.context["adminform"].form["config_deployment"].value() == "gpt-4o"

    response = change(admin, url, form_data, config_deployment="gpt-4o-mini")

    assert response.status_code == 302
    key.refresh_from_db()
    assert key.config == {**AZURE_CONFIG, "deployment": "gpt-4o-mini"}
    assert key.version == 1  # the deployment does not route the secret: no rotation


def test_saving_the_change_form_untouched_records_no_config_change(a, admin, form_data, siblings):
    key = siblings["azure"]
    events = AuditEvent.objects.count()
    response = change(admin, f"{KEYS}{key.pk}/change/", form_data)
    assert response.status_code == 302
    assert AuditEvent.objects.count() == events
