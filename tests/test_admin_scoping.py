"""An admin of organization A in the Django admin, against organization B: every changelist,
object URL, autocomplete, raw-id popup, list filter, search, add form and action hides B or
refuses it; a missing id answers exactly like B's; a superuser sees both."""

import uuid

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from audit.models import AuditEvent
from keyvault.models import ProviderKey, ProxyToken
from organizations.models import Invitation, Membership, Organization

pytestmark = pytest.mark.django_db

CHANGELISTS = {
    "providerkey": "/admin/keyvault/providerkey/",
    "proxytoken": "/admin/keyvault/proxytoken/",
    "auditevent": "/admin/audit/auditevent/",
    "membership": "/admin/organizations/membership/",
    "invitation": "/admin/organizations/invitation/",
    "organization": "/admin/organizations/organization/",
}
# The changelists with an organization filter and an organization foreign key.
SCOPED_BY_ORGANIZATION = ["providerkey", "proxytoken", "auditevent", "membership", "invitation"]


@pytest.fixture
def client(tenants, signed_in):
    """Signed in as the admin (not owner) of A."""
    return signed_in(tenants.a.admin)


def html(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def objects_of(world):
    """`(changelist path, object id)` for every object of an organization."""
    return [
        (CHANGELISTS["providerkey"], world.key.pk),
        (CHANGELISTS["proxytoken"], world.token.pk),
        (CHANGELISTS["organization"], world.org.pk),
        *[(CHANGELISTS["membership"], m.pk) for m in world.memberships],
        (CHANGELISTS["invitation"], world.invitation.pk),
        *[(CHANGELISTS["auditevent"], e.pk) for e in world.events],
    ]


B_NAMES = ["Bravo Org", "bravo-key", "bravo-token", "bravoSECRET"] + [
    f"bravo-{who}@example.com"
    for who in ("owner", "admin", "member", "viewer", "joined", "invitee")
]


def assert_nothing_of_b(page: str, tenants, *, echoed: bool = False):
    """No name, id or link of B's in `page`. With `echoed`, the page repeats B's search term
    or filter value from its own URL (the search box, "add" links), which is allowed."""
    for name in B_NAMES:
        assert name not in page, name
    for path, pk in objects_of(tenants.b):
        assert f"{path}{pk}/" not in page
    for pk in (tenants.b.key.pk, tenants.b.token.pk, tenants.b.invitation.pk):
        assert str(pk) not in page
    if not echoed:
        assert "bravo" not in page.lower()
        assert str(tenants.b.org.pk) not in page


# --- Changelists, search, filters ------------------------------------------------------------


@pytest.mark.parametrize("model", CHANGELISTS)
def test_changelist_lists_a_and_never_b(tenants, client, model):
    page = html(client.get(CHANGELISTS[model]))

    assert_nothing_of_b(page, tenants)
    if model == "auditevent":
        assert "alpha-joined@example.com" in page  # the member.added event of A
    else:
        assert "alpha" in page.lower()


@pytest.mark.parametrize("model", CHANGELISTS)
def test_search_for_b_finds_nothing(tenants, client, model):
    response = client.get(CHANGELISTS[model], {"q": "bravo"})

    assert response.context["cl"].result_count == 0
    assert_nothing_of_b(html(response), tenants, echoed=True)


@pytest.mark.parametrize("model", SCOPED_BY_ORGANIZATION)
def test_organization_filter_set_to_b_shows_nothing_and_does_not_offer_b(tenants, client, model):
    response = client.get(CHANGELISTS[model], {"organization": str(tenants.b.org.pk)})

    assert list(response.context["cl"].result_list) == []
    assert_nothing_of_b(html(response), tenants, echoed=True)
    (spec,) = [f for f in response.context["cl"].filter_specs if f.title == "organization"]
    assert list(spec.lookup_choices) == [(str(tenants.a.org.pk), "Alpha Org")]


@pytest.mark.parametrize("model", SCOPED_BY_ORGANIZATION)
def test_raw_organization_lookups_to_b_show_nothing(tenants, client, model):
    response = client.get(CHANGELISTS[model], {"organization__id__exact": str(tenants.b.org.pk)})
    assert list(response.context["cl"].result_list) == []
    assert_nothing_of_b(html(response), tenants, echoed=True)

    # A lookup through B's other fields is not one the admin allows at all.
    assert client.get(CHANGELISTS[model], {"organization__slug": "bravo"}).status_code == 400


def test_raw_id_popup_of_organizations_lists_only_a(tenants, client):
    response = client.get(CHANGELISTS["organization"], {"_to_field": "id", "_popup": "1"})

    assert [o.pk for o in response.context["cl"].result_list] == [tenants.a.org.pk]
    assert_nothing_of_b(html(response), tenants)


# --- Object URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize("view", ["change", "delete", "history"])
def test_every_object_of_b_answers_404(tenants, client, view):
    for path, pk in objects_of(tenants.b):
        assert client.get(f"{path}{pk}/{view}/").status_code == 404, (path, view)


@pytest.mark.parametrize("view", ["change", "delete", "history"])
@pytest.mark.parametrize("model", CHANGELISTS)
def test_missing_id_answers_404_like_another_organizations(client, model, view):
    missing = 987654321 if model in ("auditevent", "membership") else uuid.uuid4()
    for pk in (missing, "not-an-id"):
        assert client.get(f"{CHANGELISTS[model]}{pk}/{view}/").status_code == 404


def test_posting_to_b_objects_changes_nothing(tenants, client):
    b = tenants.b
    for path, pk in objects_of(b):
        assert client.post(f"{path}{pk}/delete/", {"post": "yes"}).status_code == 404
    response = client.post(
        f"{CHANGELISTS['providerkey']}{b.key.pk}/change/",
        {"name": "taken over", "config": "{}", "new_secret": "sk-proj-stolen0000000000000000"},
    )
    assert response.status_code == 404
    assert ProviderKey.objects.get(pk=b.key.pk).name == "bravo-key"
    assert ProxyToken.objects.get(pk=b.token.pk).revoked_at is None
    assert Membership.objects.filter(organization=b.org).count() == len(b.memberships)
    assert Invitation.objects.get(pk=b.invitation.pk).is_pending
    assert Organization.objects.filter(pk=b.org.pk).exists()


def test_a_objects_open(tenants, client):
    for path, pk in objects_of(tenants.a):
        for view in ("change", "history"):
            assert client.get(f"{path}{pk}/{view}/").status_code == 200, (path, view)


def test_delete_confirmation_of_a_lists_nothing_of_b(tenants, signed_in):
    client = signed_in(tenants.a.owner)
    page = html(client.get(f"{CHANGELISTS['organization']}{tenants.a.org.pk}/delete/"))

    assert "alpha-key" in page
    assert_nothing_of_b(page, tenants)


# --- Autocomplete and foreign-key choices -------------------------------------------------------


@pytest.mark.parametrize("model", ["providerkey", "proxytoken", "membership", "invitation"])
def test_organization_autocomplete_returns_only_a(tenants, client, model):
    app = "organizations" if model in ("membership", "invitation") else "keyvault"
    for term in ("", "org", "bravo"):
        response = client.get(
            "/admin/autocomplete/",
            {"app_label": app, "model_name": model, "field_name": "organization", "term": term},
        )
        assert response.status_code == 200
        ids = {result["id"] for result in response.json()["results"]}
        assert ids == ({str(tenants.a.org.pk)} if term != "bravo" else set())


@pytest.mark.parametrize(
    "url",
    [
        "/admin/keyvault/providerkey/add/",
        "/admin/keyvault/proxytoken/add/",
        "/admin/organizations/membership/add/",
        "/admin/organizations/invitation/add/",
    ],
)
def test_organization_choice_on_add_forms_is_only_a(tenants, client, url):
    response = client.get(url)

    field = response.context["adminform"].form.fields["organization"]
    assert list(field.queryset) == [tenants.a.org]
    assert_nothing_of_b(html(response), tenants)


def test_adding_a_key_to_b_is_refused_and_writes_nothing(tenants, client):
    keys, events = ProviderKey.objects.count(), AuditEvent.objects.count()

    response = client.post(
        "/admin/keyvault/providerkey/add/",
        {
            "organization": str(tenants.b.org.pk),
            "provider": "openai",
            "name": "planted",
            "new_secret": "sk-proj-planted000000000000000000000",
            "config": "{}",
            "enabled": "on",
        },
    )

    assert response.status_code == 200
    assert "organization" in response.context["adminform"].form.errors
    assert (ProviderKey.objects.count(), AuditEvent.objects.count()) == (keys, events)


def test_adding_a_token_member_or_invitation_to_b_is_refused_and_writes_nothing(
    tenants, client, mailoutbox
):
    before = (
        ProxyToken.objects.count(),
        Membership.objects.count(),
        Invitation.objects.count(),
        AuditEvent.objects.count(),
    )

    token = client.post(
        "/admin/keyvault/proxytoken/add/",
        {"organization": str(tenants.b.org.pk), "name": "planted", "token_scopes": ["keys:read"]},
    )
    invitee = {"organization": str(tenants.b.org.pk), "email": "spy@example.com", "role": "viewer"}
    member = client.post("/admin/organizations/membership/add/", invitee)
    invitation = client.post("/admin/organizations/invitation/add/", invitee)

    for response in (token, member, invitation):
        assert response.status_code == 200
        assert "organization" in response.context["adminform"].form.errors
        assert "kvp_" not in response.content.decode()
        assert "kvi_" not in response.content.decode()
    after = (
        ProxyToken.objects.count(),
        Membership.objects.count(),
        Invitation.objects.count(),
        AuditEvent.objects.count(),
    )
    assert after == before
    assert mailoutbox == []


# --- Actions -----------------------------------------------------------------------------------


def post_action(client, model, action, ids):
    return client.post(
        CHANGELISTS[model],
        {"action": action, ACTION_CHECKBOX_NAME: [str(pk) for pk in ids], "index": "0"},
    )


@pytest.mark.parametrize("action", ["disable_keys", "delete_selected"])
def test_key_actions_with_b_ids_change_nothing_in_b(tenants, client, action):
    response = post_action(client, "providerkey", action, [tenants.a.key.pk, tenants.b.key.pk])
    if action == "delete_selected":  # the confirmation page, then the confirmed deletion
        assert "bravo" not in html(response).lower()
        client.post(
            CHANGELISTS["providerkey"],
            {
                "action": action,
                ACTION_CHECKBOX_NAME: [str(tenants.a.key.pk), str(tenants.b.key.pk)],
                "post": "yes",
            },
        )
        assert not ProviderKey.objects.filter(pk=tenants.a.key.pk).exists()
    else:
        assert ProviderKey.objects.get(pk=tenants.a.key.pk).enabled is False

    b_key = ProviderKey.objects.get(pk=tenants.b.key.pk)
    assert b_key.enabled is True
    assert not AuditEvent.objects.filter(organization=tenants.b.org, actor_user=tenants.a.admin)


def test_enable_action_with_b_ids_changes_nothing_in_b(tenants, client):
    ProviderKey.objects.filter(pk__in=[tenants.a.key.pk, tenants.b.key.pk]).update(enabled=False)

    post_action(client, "providerkey", "enable_keys", [tenants.a.key.pk, tenants.b.key.pk])

    assert ProviderKey.objects.get(pk=tenants.a.key.pk).enabled is True
    assert ProviderKey.objects.get(pk=tenants.b.key.pk).enabled is False


def test_invitation_revoke_action_with_b_ids_revokes_nothing_in_b(tenants, client):
    a, b = tenants.a.invitation, tenants.b.invitation
    post_action(client, "invitation", "revoke_invitations", [b.pk])
    assert Invitation.objects.get(pk=b.pk).is_pending

    post_action(client, "invitation", "revoke_invitations", [a.pk, b.pk])
    assert Invitation.objects.get(pk=a.pk).revoked_at is not None
    assert Invitation.objects.get(pk=b.pk).is_pending
    assert not AuditEvent.objects.filter(organization=tenants.b.org, actor_user=tenants.a.admin)


def test_revoke_action_with_b_ids_revokes_nothing_in_b(tenants, client):
    post_action(client, "proxytoken", "revoke_tokens", [tenants.b.token.pk])
    assert ProxyToken.objects.get(pk=tenants.b.token.pk).revoked_at is None

    post_action(client, "proxytoken", "revoke_tokens", [tenants.a.token.pk, tenants.b.token.pk])
    assert ProxyToken.objects.get(pk=tenants.a.token.pk).revoked_at is not None
    assert ProxyToken.objects.get(pk=tenants.b.token.pk).revoked_at is None
    assert not AuditEvent.objects.filter(organization=tenants.b.org, actor_user=tenants.a.admin)


# --- The superuser -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", CHANGELISTS)
def test_superuser_sees_both_organizations(tenants, signed_in, superuser, model):
    client = signed_in(superuser)
    page = html(client.get(CHANGELISTS[model]))

    assert "alpha" in page.lower()
    assert "bravo" in page.lower()


def test_superuser_autocomplete_and_filters_offer_both(tenants, signed_in, superuser):
    client = signed_in(superuser)
    response = client.get(
        "/admin/autocomplete/",
        {"app_label": "keyvault", "model_name": "providerkey", "field_name": "organization"},
    )
    ids = {result["id"] for result in response.json()["results"]}
    assert ids == {str(tenants.a.org.pk), str(tenants.b.org.pk)}

    response = client.get(CHANGELISTS["providerkey"], {"organization": str(tenants.b.org.pk)})
    assert [k.pk for k in response.context["cl"].result_list] == [tenants.b.key.pk]
