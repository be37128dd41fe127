"""The access layer: one object per caller, its scopes resolved once, and the fetch-and-authorize
calls every surface uses. (The role matrix itself, cell by cell: tests/test_permissions.py.)"""

import uuid

import pytest
from django.core.exceptions import PermissionDenied

from core.errors import NotFoundError
from keyvault import selectors
from organizations import permissions, roles
from organizations.access import Access
from organizations.models import Invitation, Membership
from organizations.permissions import KEY_CHANGE_ACTIONS, Action
from organizations.selectors import access_invitation, access_membership
from tests.factories import InvitationFactory, ProviderKeyFactory, UserFactory

pytestmark = pytest.mark.django_db

EVERY_ACTION = frozenset(Action)


def allowed(access, organization, obj=None) -> frozenset:
    return permissions.visible_actions(access, organization, obj)


# --- One scope vocabulary -------------------------------------------------------------------


def test_every_role_scope_and_token_grant_is_in_the_one_vocabulary():
    for role in roles.ROLES:
        assert role.scopes <= roles.ALL_SCOPES
    for grants in roles.TOKEN_SCOPE_GRANTS.values():
        assert grants <= roles.ALL_SCOPES
    assert set(roles.TOKEN_SCOPE_GRANTS) == set(roles.TokenScope)


def test_every_action_needs_a_scope_of_the_vocabulary():
    for action in Action:
        assert permissions.scope_for(action) in roles.ALL_SCOPES


def test_no_role_carries_the_secret_scope():
    assert not any(roles.Scope.KEYS_SECRET in role.scopes for role in roles.ROLES)


# --- The operator and superusers ------------------------------------------------------------


def test_the_operator_may_do_everything_everywhere(organization, other_organization):
    operator = Access.operator("tests")
    for org in (organization, other_organization):
        assert allowed(operator, org) == EVERY_ACTION


def test_an_active_superuser_may_do_everything_but_see_a_secret(organization, provider_key):
    superuser = Access.for_user(UserFactory(is_superuser=True))
    # Nor report a key's health: that is a proxy's, and needs keys:secret too.
    assert allowed(superuser, organization) == EVERY_ACTION - {Action.KEY_REVEAL, Action.KEY_REPORT}
    assert allowed(superuser, organization, provider_key) >= KEY_CHANGE_ACTIONS
    with pytest.raises(PermissionDenied, match="proxy tokens only"):
        permissions.require(superuser, Action.KEY_REVEAL, organization, provider_key)


def test_a_deactivated_superuser_may_do_nothing(organization, member_of):
    user = UserFactory(is_superuser=True, is_active=False)
    member_of(organization, roles.OWNER.id, user=user)
    assert allowed(Access.for_user(user), organization) == frozenset()


# --- Members --------------------------------------------------------------------------------


def test_a_member_holds_their_role_in_their_organization_and_nothing_elsewhere(
    organization, other_organization, member_of
):
    membership = member_of(organization, roles.ADMIN.id)
    access = Access.for_member(membership)
    assert access.scopes_in(organization) == roles.ADMIN.scopes
    assert access.scopes_in(other_organization) == frozenset()
    assert access.organization_id == organization.pk


def test_a_deactivated_member_holds_nothing(organization, member_of):
    membership = member_of(organization, roles.OWNER.id)
    membership.user.is_active = False
    membership.user.save()
    assert Access.for_user(membership.user).scopes_in(organization) == frozenset()


def test_the_membership_is_looked_up_once_per_organization(
    organization, member_of, django_assert_num_queries
):
    user = member_of(organization, roles.MEMBER.id).user
    access = Access.for_user(user)
    with django_assert_num_queries(1):
        for action in Action:
            permissions.can(access, action, organization)
            permissions.can(access, action, organization.pk)


def test_a_member_reached_through_their_membership_costs_no_query(
    organization, member_of, django_assert_num_queries
):
    access = Access.for_member(member_of(organization, roles.ADMIN.id))
    with django_assert_num_queries(0):
        assert allowed(access, organization) >= {Action.KEY_LIST, Action.TOKEN_MANAGE}


# --- Proxy tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        (["keys:read"], {Action.KEY_LIST}),
        (["keys:secret"], {Action.KEY_REVEAL, Action.KEY_REPORT}),
        (["keys:write"], {Action.KEY_ADD, Action.KEY_REORDER, *KEY_CHANGE_ACTIONS}),
        (
            ["keys:read", "keys:secret", "keys:write"],
            {
                Action.KEY_LIST,
                Action.KEY_REVEAL,
                Action.KEY_REPORT,
                Action.KEY_ADD,
                Action.KEY_REORDER,
                *KEY_CHANGE_ACTIONS,
            },
        ),
    ],
)
def test_a_token_holds_its_scopes_grants_and_nothing_about_people(
    organization, make_token, scopes, expected
):
    access = Access.for_token(make_token(*scopes))
    assert allowed(access, organization) == expected
    for action in (Action.TOKEN_MANAGE, Action.MEMBER_MANAGE, Action.AUDIT_READ):
        assert action not in allowed(access, organization)


def test_a_token_holds_nothing_in_another_organization(other_organization, make_token):
    access = Access.for_token(make_token("keys:read", "keys:secret", "keys:write"))
    assert allowed(access, other_organization) == frozenset()


def test_a_write_token_changes_any_key_of_its_organization(organization, owner, make_token):
    others_key = ProviderKeyFactory(organization=organization, created_by=owner)
    access = Access.for_token(make_token("keys:write"))
    assert allowed(access, organization, others_key) >= KEY_CHANGE_ACTIONS


def test_the_api_names_the_token_scope_a_refused_request_lacks(organization, make_token, client):
    token = make_token("keys:write")
    response = client.post(
        "/api/v1/keys",
        data={"provider": "openai", "name": "x", "secret": "sk-proj-abcdefabcdef0123456789"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token.raw}",
    )
    assert response.status_code == 403
    assert response.json()["detail"] == "The token lacks the scope keys:read."


# --- Fetch and authorize in one call --------------------------------------------------------


def test_access_provider_key_finds_the_callers_key(organization, provider_key, make_token):
    access = Access.for_token(make_token("keys:read"))
    assert selectors.access_provider_key(access, provider_key.pk, Action.KEY_LIST) == provider_key


@pytest.mark.parametrize("key_id", ["missing", "malformed", "foreign"])
def test_access_provider_key_answers_not_found_alike(
    organization, other_organization, make_token, key_id
):
    ids = {
        "missing": uuid.uuid4(),
        "malformed": "not-a-uuid",
        "foreign": ProviderKeyFactory(organization=other_organization).pk,
    }
    access = Access.for_token(make_token("keys:read", "keys:secret"))
    for action in (Action.KEY_LIST, Action.KEY_REVEAL):
        with pytest.raises(NotFoundError):
            selectors.access_provider_key(access, ids[key_id], action)


def test_a_caller_who_may_not_see_keys_finds_none(organization, provider_key, member_of):
    access = Access.for_user(UserFactory())  # not a member
    with pytest.raises(NotFoundError):
        selectors.access_provider_key(
            access, provider_key.pk, Action.KEY_LIST, organization_id=organization.pk
        )


def test_a_secret_token_without_read_may_still_fetch_for_reveal(provider_key, make_token):
    access = Access.for_token(make_token("keys:secret"))
    assert selectors.access_provider_key(access, provider_key.pk, Action.KEY_REVEAL).pk == (
        provider_key.pk
    )


def test_a_member_sees_anothers_key_but_may_not_change_it(organization, owner, member_of):
    others_key = ProviderKeyFactory(organization=organization, created_by=owner)
    access = Access.for_member(member_of(organization, roles.MEMBER.id))
    assert selectors.access_provider_key(access, others_key.pk, Action.KEY_LIST) == others_key
    with pytest.raises(PermissionDenied):
        selectors.access_provider_key(access, others_key.pk, Action.KEY_EDIT)


def test_access_proxy_token_is_for_those_who_manage_tokens(
    organization, other_organization, member_of, make_token
):
    token = make_token("keys:read")
    foreign = make_token("keys:read", organization=other_organization)
    admin = Access.for_member(member_of(organization, roles.ADMIN.id))
    member = Access.for_member(member_of(organization, roles.MEMBER.id))
    assert selectors.access_proxy_token(admin, token.pk) == token
    for access, token_id in ((admin, foreign.pk), (admin, "nope"), (member, token.pk)):
        with pytest.raises(NotFoundError):
            selectors.access_proxy_token(access, token_id)


def test_access_membership_follows_the_rank_rule(organization, other_organization, member_of):
    admin = Access.for_member(member_of(organization, roles.ADMIN.id))
    member = member_of(organization, roles.MEMBER.id)
    owner = member_of(organization, roles.OWNER.id)
    foreign = member_of(other_organization, roles.VIEWER.id)
    found = access_membership(admin, member.pk, organization_id=organization.pk)
    assert found == member
    with pytest.raises(PermissionDenied):
        access_membership(admin, owner.pk, organization_id=organization.pk)
    for membership_id in (foreign.pk, 10**9, "x"):
        with pytest.raises(Membership.DoesNotExist):
            access_membership(admin, membership_id, organization_id=organization.pk)
    with pytest.raises(Membership.DoesNotExist):
        access_membership(Access.for_member(member), owner.pk, organization_id=organization.pk)


def test_access_invitation_is_for_those_who_manage_members(
    organization, other_organization, member_of
):
    invitation = InvitationFactory(organization=organization)
    foreign = InvitationFactory(organization=other_organization)
    admin = Access.for_member(member_of(organization, roles.ADMIN.id))
    viewer = Access.for_member(member_of(organization, roles.VIEWER.id))
    assert access_invitation(admin, invitation.pk, organization_id=organization.pk) == invitation
    for access, invitation_id in ((admin, foreign.pk), (viewer, invitation.pk)):
        with pytest.raises(Invitation.DoesNotExist):
            access_invitation(access, invitation_id, organization_id=organization.pk)


def test_jobs_over_every_organization_are_for_the_trusted_only(
    organization, member_of, make_token, provider_key
):
    from audit.models import AuditEvent
    from keyvault import services

    owner = Access.for_member(member_of(organization, roles.OWNER.id))
    token = Access.for_token(make_token("keys:read", "keys:secret", "keys:write"))
    before = AuditEvent.objects.count()
    for caller in (owner, token, Access.for_user(UserFactory(is_superuser=True, is_active=False))):
        for job in (services.kek_rotate, services.envelopes_upgrade):
            with pytest.raises(PermissionDenied):
                job(actor=caller)
    assert AuditEvent.objects.count() == before
    services.kek_rotate(actor=Access.for_user(UserFactory(is_superuser=True)))
    services.envelopes_upgrade(actor=Access.operator("tests"))
    assert AuditEvent.objects.count() == before + 2


def test_on_the_team_pages_a_superuser_is_their_role(organization, member_of, signed_in):
    user = UserFactory(is_superuser=True)
    membership = member_of(organization, roles.VIEWER.id, user=user)
    assert allowed(Access.for_member(membership), organization) == {Action.KEY_LIST}
    client = signed_in(user)
    for page in ("tokens/", "audit/", "settings/delete/", "members/invite/"):
        assert client.get(f"/o/{organization.slug}/{page}").status_code == 403, page
    assert client.get(f"/o/{organization.slug}/keys/").status_code == 200
