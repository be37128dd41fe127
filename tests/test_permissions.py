"""The role matrix of docs/permissions.md, cell by cell: `organizations.permissions` answers it,
and the key services enforce it through `organizations.authorization` for every kind of actor.
(Tokens, superusers and the operator: tests/test_access.py.)"""

import uuid

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied

from audit.models import AuditEvent
from keyvault import services
from keyvault.models import ProviderKey
from organizations import permissions
from organizations.access import Access
from organizations.authorization import authorize, authorize_role_grant
from organizations.models import Membership
from organizations.permissions import Action
from tests import matrix
from tests.factories import ProviderKeyFactory, UserFactory
from tests.helpers import key_row, role_pairs
from tests.matrix import ADMIN, MEMBER, OWNER, VIEWER

OPERATOR = Access.operator("tests")


# The matrix is asked about members: each check below builds the access a member's page
# resolves (`Access.for_member`) in the member's organization; None is nobody at all.
def caller(membership) -> Access:
    return Access() if membership is None else Access.for_member(membership)


def _organization(membership, obj=None):
    if membership is not None:
        return membership.organization_id
    return permissions.organization_of(obj) if obj is not None else uuid.uuid4()


def can(membership, action, obj=None) -> bool:
    return permissions.can(caller(membership), action, _organization(membership, obj), obj)


def require(membership, action, obj=None) -> None:
    permissions.require(caller(membership), action, _organization(membership, obj), obj)


def can_grant_role(membership, role_id) -> bool:
    return permissions.can_grant_role(caller(membership), _organization(membership), role_id)


def can_manage_member(membership, target) -> bool:
    return permissions.can_manage_member(caller(membership), target)


def visible_actions(membership, obj=None) -> frozenset:
    return permissions.visible_actions(caller(membership), _organization(membership, obj), obj)


ROLE_IDS = list(matrix.ROLES)
EVERYONE = matrix.EVERYONE

# docs/permissions.md "The matrix" (tests/matrix.py), one row per action that needs no
# particular object; an action the code does not know fails here, at import.
MATRIX = {Action(action): allowed for action, allowed in matrix.ALLOWED.items()}
KEY_CHANGE_ACTIONS = frozenset(Action(action) for action in matrix.KEY_CHANGE_ACTIONS)
# "edit / rotate / disable / delete a key": members only on keys they added.
KEY_CHANGE_ON_OWN_KEY = matrix.CHANGE_OWN_KEY
KEY_CHANGE_ON_OTHERS_KEY = matrix.CHANGE_ANY_KEY
# "members: invite, remove, change role": admins not on owners, nobody above their own role.
MAY_MANAGE_TARGET = matrix.MAY_MANAGE
MAY_GRANT = matrix.MAY_GRANT


def _cells(table, allowed):
    return [
        pytest.param(role, action, id=f"{role}-{action}")
        for action, roles_allowed in table.items()
        for role in ROLE_IDS
        if (role in roles_allowed) == allowed
    ]


def _key_cells(roles_allowed, allowed):
    return [
        pytest.param(role, action, id=f"{role}-{action}")
        for action in sorted(KEY_CHANGE_ACTIONS)
        for role in ROLE_IDS
        if (role in roles_allowed) == allowed
    ]


def key_added_by(membership):
    """A key added by `membership`'s user while they were a member; the role is restored after,
    so a viewer here is someone demoted since they added it."""
    role = membership.role
    Membership.objects.filter(pk=membership.pk).update(role=MEMBER)
    key = ProviderKeyFactory(organization=membership.organization, created_by=membership.user)
    Membership.objects.filter(pk=membership.pk).update(role=role)
    return key


@pytest.fixture
def others_key(organization, member_of):
    return ProviderKeyFactory(
        organization=organization, created_by=member_of(organization, MEMBER).user
    )


def _object_for(action, organization, key):
    """A same-organization object for `action`: the organization itself for org actions."""
    return organization if action == Action.ORG_MANAGE else key


def test_matrix_here_covers_every_action():
    assert set(MATRIX) | KEY_CHANGE_ACTIONS == set(Action)


# --- permissions.can: actions without an object ---------------------------------------------


@pytest.mark.parametrize(("role", "action"), _cells(MATRIX, allowed=True))
def test_role_may_take_action_in_its_organization(organization, member_of, role, action):
    assert can(member_of(organization, role), action)


@pytest.mark.parametrize(("role", "action"), _cells(MATRIX, allowed=False))
def test_role_may_not_take_action_in_its_organization(organization, member_of, role, action):
    membership = member_of(organization, role)
    assert not can(membership, action)
    with pytest.raises(PermissionDenied):
        require(membership, action)


@pytest.mark.parametrize(
    ("role", "action"), _cells({a: r for a, r in MATRIX.items() if a != Action.MEMBER_MANAGE}, True)
)
def test_role_may_take_action_on_an_object_of_its_organization(
    organization, member_of, provider_key, role, action
):
    membership = member_of(organization, role)
    assert can(membership, action, _object_for(action, organization, provider_key))


@pytest.mark.parametrize(
    ("role", "action"),
    _cells({a: r for a, r in MATRIX.items() if a != Action.MEMBER_MANAGE}, False),
)
def test_role_may_not_take_action_on_an_object_of_its_organization(
    organization, member_of, provider_key, role, action
):
    membership = member_of(organization, role)
    assert not can(membership, action, _object_for(action, organization, provider_key))


# --- permissions.can: changing one key ------------------------------------------------------


@pytest.mark.parametrize(("role", "action"), _key_cells(KEY_CHANGE_ON_OWN_KEY, allowed=True))
def test_role_may_change_a_key_they_added(organization, member_of, role, action):
    membership = member_of(organization, role)
    assert can(membership, action, key_added_by(membership))


@pytest.mark.parametrize(("role", "action"), _key_cells(KEY_CHANGE_ON_OWN_KEY, allowed=False))
def test_role_may_not_change_even_a_key_they_added(organization, member_of, role, action):
    membership = member_of(organization, role)
    assert not can(membership, action, key_added_by(membership))


@pytest.mark.parametrize(("role", "action"), _key_cells(KEY_CHANGE_ON_OTHERS_KEY, allowed=True))
def test_role_may_change_someone_elses_key(organization, member_of, others_key, role, action):
    assert can(member_of(organization, role), action, others_key)


@pytest.mark.parametrize(("role", "action"), _key_cells(KEY_CHANGE_ON_OTHERS_KEY, allowed=False))
def test_role_may_not_change_someone_elses_key(organization, member_of, others_key, role, action):
    assert not can(member_of(organization, role), action, others_key)


@pytest.mark.parametrize(("role", "action"), _key_cells(KEY_CHANGE_ON_OTHERS_KEY, allowed=False))
def test_role_may_not_change_a_key_the_operator_added(
    organization, member_of, provider_key, role, action
):
    assert provider_key.created_by_id is None
    assert not can(member_of(organization, role), action, provider_key)


@pytest.mark.parametrize(("role", "action"), _key_cells(KEY_CHANGE_ON_OTHERS_KEY, allowed=True))
def test_role_may_change_keys_in_general(organization, member_of, role, action):
    assert can(member_of(organization, role), action)


@pytest.mark.parametrize(("role", "action"), _key_cells(KEY_CHANGE_ON_OTHERS_KEY, allowed=False))
def test_role_may_not_change_keys_without_naming_one_they_added(
    organization, member_of, role, action
):
    assert not can(member_of(organization, role), action)


def test_member_cannot_rotate_others_key(organization, member_of, others_key):
    assert not can(member_of(organization, MEMBER), Action.KEY_ROTATE, others_key)


def test_member_demoted_to_viewer_can_no_longer_change_the_key_they_added(organization, member_of):
    membership = member_of(organization, MEMBER)
    key = key_added_by(membership)
    assert can(membership, Action.KEY_EDIT, key)
    Membership.objects.filter(pk=membership.pk).update(role=VIEWER)
    membership.refresh_from_db()
    assert not can(membership, Action.KEY_EDIT, key)


# --- permissions.can: managing members ------------------------------------------------------


@pytest.mark.parametrize(("role", "target"), role_pairs(MAY_MANAGE_TARGET, True, "on"))
def test_role_may_manage_member_of_target_role(organization, member_of, role, target):
    membership = member_of(organization, role)
    other = member_of(organization, target)
    assert can(membership, Action.MEMBER_MANAGE, other)
    assert can_manage_member(membership, other)


@pytest.mark.parametrize(("role", "target"), role_pairs(MAY_MANAGE_TARGET, False, "on"))
def test_role_may_not_manage_member_of_target_role(organization, member_of, role, target):
    membership = member_of(organization, role)
    other = member_of(organization, target)
    assert not can(membership, Action.MEMBER_MANAGE, other)
    assert not can_manage_member(membership, other)


@pytest.mark.parametrize(("role", "granted"), role_pairs(MAY_GRANT, True, "on"))
def test_role_may_grant_role(organization, member_of, role, granted):
    assert can_grant_role(member_of(organization, role), granted)


@pytest.mark.parametrize(("role", "granted"), role_pairs(MAY_GRANT, False, "on"))
def test_role_may_not_grant_role(organization, member_of, role, granted):
    assert not can_grant_role(member_of(organization, role), granted)


@pytest.mark.parametrize("role", ROLE_IDS)
@pytest.mark.parametrize("granted", ["", "Owner", "superuser", None])
def test_nobody_may_grant_an_unknown_role(organization, member_of, role, granted):
    assert not can_grant_role(member_of(organization, role), granted)


def test_admin_cannot_manage_owners_or_grant_owner(organization, member_of):
    admin = member_of(organization, ADMIN)
    assert not can(admin, Action.MEMBER_MANAGE, member_of(organization, OWNER))
    assert not can_grant_role(admin, OWNER)


# --- Another organization, no membership ----------------------------------------------------


def _foreign_object(action, other_organization, user, member_of):
    """An object of `other_organization` for `action`, owned there by `user` where it can be:
    being an owner elsewhere must give no right here."""
    foreign_membership = member_of(other_organization, OWNER, user=user)
    if action == Action.ORG_MANAGE:
        return other_organization
    if action == Action.MEMBER_MANAGE:
        return member_of(other_organization, VIEWER)
    return key_added_by(foreign_membership)


@pytest.mark.parametrize("role", ROLE_IDS)
@pytest.mark.parametrize("action", list(Action))
def test_object_of_another_organization_is_refused_for_every_role(
    organization, other_organization, member_of, role, action
):
    membership = member_of(organization, role)
    obj = _foreign_object(action, other_organization, membership.user, member_of)
    assert not can(membership, action, obj)
    assert action not in visible_actions(membership, obj)


@pytest.mark.parametrize("role", ROLE_IDS)
def test_member_of_another_organization_cannot_be_managed(
    organization, other_organization, member_of, role
):
    foreign = member_of(other_organization, VIEWER)
    assert not can_manage_member(member_of(organization, role), foreign)


@pytest.mark.parametrize("action", list(Action))
def test_no_membership_is_refused_every_action(provider_key, action):
    assert not can(None, action)
    assert not can(None, action, provider_key)
    with pytest.raises(PermissionDenied):
        require(None, action)


def test_no_membership_may_neither_grant_nor_manage(organization, member_of):
    assert not can_grant_role(None, VIEWER)
    assert not can_manage_member(None, member_of(organization, VIEWER))
    assert visible_actions(None) == frozenset()


# --- visible_actions ------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLE_IDS)
def test_visible_actions_follow_the_matrix(organization, member_of, role):
    expected = {action for action, allowed in MATRIX.items() if role in allowed}
    if role in KEY_CHANGE_ON_OTHERS_KEY:
        expected |= KEY_CHANGE_ACTIONS
    assert visible_actions(member_of(organization, role)) == expected


def test_visible_actions_on_a_key_the_member_added_include_changing_it(organization, member_of):
    membership = member_of(organization, MEMBER)
    actions = visible_actions(membership, key_added_by(membership))
    assert actions >= KEY_CHANGE_ACTIONS
    assert Action.TOKEN_MANAGE not in actions


# --- The same matrix, enforced by the key services through an Access -------------------------


ROTATED = "sk-proj-rotated-000000abcdefghijklmnopqrstuvwxyz"


def _rename(key, actor):
    services.provider_key_update(key=key, actor=actor, name="Renamed")


def _disable(key, actor):
    services.provider_key_update(key=key, actor=actor, enabled=False)


def _rotate(key, actor):
    services.provider_key_rotate(key=key, actor=actor, secret=ROTATED)


def _delete(key, actor):
    services.provider_key_delete(key=key, actor=actor)


KEY_SERVICES = {"edit": _rename, "disable": _disable, "rotate": _rotate, "delete": _delete}


def _snapshot(key):
    """What a refused change must leave exactly as it was: the key's row as stored (its sealed
    secret included) and the audit trail."""
    return {**key_row(key), "audit": AuditEvent.objects.count()}


def _service_cells(roles_allowed, allowed):
    return [
        pytest.param(role, name, id=f"{role}-{name}")
        for name in KEY_SERVICES
        for role in ROLE_IDS
        if (role in roles_allowed) == allowed
    ]


def _assert_refused_and_unchanged(key, change, actor):
    before = _snapshot(key)
    with pytest.raises(PermissionDenied):
        change(key, actor)
    assert _snapshot(key) == before


def _assert_applied(key, name, actor):
    audit_before = AuditEvent.objects.count()
    KEY_SERVICES[name](key, actor)
    assert AuditEvent.objects.count() == audit_before + 1
    event = AuditEvent.objects.first()
    assert event.actor_label == actor.label
    assert event.target_id == str(key.pk)
    if name == "delete":
        assert not ProviderKey.objects.filter(pk=key.pk).exists()
        return
    row = ProviderKey.objects.get(pk=key.pk)
    if name == "edit":
        assert row.name == "Renamed"
    elif name == "disable":
        assert row.enabled is False
    else:
        assert row.version == key.version + 1
        assert services.provider_key_reveal(actor=OPERATOR, key=row) == ROTATED


@pytest.mark.parametrize(("role", "name"), _service_cells(KEY_CHANGE_ON_OWN_KEY, allowed=True))
def test_service_lets_role_change_a_key_they_added(organization, member_of, role, name):
    membership = member_of(organization, role)
    _assert_applied(key_added_by(membership), name, Access.for_user(membership.user))


@pytest.mark.parametrize(("role", "name"), _service_cells(KEY_CHANGE_ON_OWN_KEY, allowed=False))
def test_service_refuses_role_changing_a_key_they_added(organization, member_of, role, name):
    membership = member_of(organization, role)
    key = key_added_by(membership)
    _assert_refused_and_unchanged(key, KEY_SERVICES[name], Access.for_user(membership.user))


@pytest.mark.parametrize(("role", "name"), _service_cells(KEY_CHANGE_ON_OTHERS_KEY, allowed=True))
def test_service_lets_role_change_someone_elses_key(
    organization, member_of, others_key, role, name
):
    _assert_applied(others_key, name, Access.for_user(member_of(organization, role).user))


@pytest.mark.parametrize(("role", "name"), _service_cells(KEY_CHANGE_ON_OTHERS_KEY, allowed=False))
def test_service_refuses_role_changing_someone_elses_key(
    organization, member_of, others_key, role, name
):
    actor = Access.for_user(member_of(organization, role).user)
    _assert_refused_and_unchanged(others_key, KEY_SERVICES[name], actor)


def test_member_cannot_rotate_others_key_through_the_service(organization, member_of, others_key):
    actor = Access.for_user(member_of(organization, MEMBER).user)
    before = _snapshot(others_key)
    with pytest.raises(PermissionDenied):
        services.provider_key_rotate(key=others_key, actor=actor, secret=ROTATED)
    after = _snapshot(others_key)
    assert (after["version"], after["secret_hint"], after["audit"]) == (
        before["version"],
        before["secret_hint"],
        before["audit"],
    )
    assert after == before


def _create(organization, actor):
    return services.provider_key_create(
        organization=organization,
        actor=actor,
        provider="anthropic",
        name="New key",
        secret="sk-ant-api03-new0000abcdefghijklmnopqrstuvwxyz",
    )


@pytest.mark.parametrize("role", sorted(MATRIX[Action.KEY_ADD]))
def test_service_lets_role_add_a_key_recorded_as_theirs(organization, member_of, role):
    user = member_of(organization, role).user
    key = _create(organization, Access.for_user(user))
    assert key.created_by == user
    assert can(Membership.objects.get(user=user), Action.KEY_EDIT, key)


@pytest.mark.parametrize("role", sorted(EVERYONE - MATRIX[Action.KEY_ADD]))
def test_service_refuses_role_adding_a_key(organization, member_of, role):
    actor = Access.for_user(member_of(organization, role).user)
    with pytest.raises(PermissionDenied):
        _create(organization, actor)
    assert not ProviderKey.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("name", list(KEY_SERVICES))
def test_owner_of_another_organization_cannot_change_this_organizations_key(
    organization, other_organization, member_of, others_key, name
):
    actor = Access.for_user(member_of(other_organization, OWNER).user)
    _assert_refused_and_unchanged(others_key, KEY_SERVICES[name], actor)


def test_owner_of_another_organization_cannot_add_a_key_here(
    organization, other_organization, member_of
):
    actor = Access.for_user(member_of(other_organization, OWNER).user)
    with pytest.raises(PermissionDenied):
        _create(organization, actor)
    assert not ProviderKey.objects.filter(organization=organization).exists()


@pytest.mark.parametrize("name", list(KEY_SERVICES))
def test_operator_may_change_any_key(organization, others_key, name):
    _assert_applied(others_key, name, Access.operator("tests"))


def test_operator_adds_keys_with_no_user_as_creator(organization):
    key = _create(organization, Access.operator("tests"))
    assert key.created_by is None
    assert AuditEvent.objects.get().actor_label == "tests"


@pytest.mark.parametrize("name", list(KEY_SERVICES))
def test_anonymous_actor_is_refused(organization, others_key, name):
    _assert_refused_and_unchanged(others_key, KEY_SERVICES[name], Access.for_user(AnonymousUser()))
    _assert_refused_and_unchanged(others_key, KEY_SERVICES[name], Access())


@pytest.mark.parametrize("name", list(KEY_SERVICES))
def test_deactivated_owner_is_refused(organization, member_of, others_key, name):
    user = member_of(organization, OWNER).user
    user.is_active = False
    user.save()
    _assert_refused_and_unchanged(others_key, KEY_SERVICES[name], Access.for_user(user))


def test_superuser_is_trusted_without_a_membership(organization, others_key):
    """Superusers are platform operators (docs/decisions.md)."""
    superuser = UserFactory(is_superuser=True, is_staff=True)
    _assert_applied(others_key, "rotate", Access.for_user(superuser))


def test_deactivated_superuser_is_not_trusted(organization, others_key):
    superuser = UserFactory(is_superuser=True, is_staff=True, is_active=False)
    _assert_refused_and_unchanged(others_key, _rotate, Access.for_user(superuser))


# --- organizations.authorization directly ---------------------------------------------------


@pytest.mark.parametrize(("role", "action"), _cells(MATRIX, allowed=False))
def test_authorize_refuses_what_the_matrix_denies(organization, member_of, role, action):
    with pytest.raises(PermissionDenied):
        authorize(Access.for_user(member_of(organization, role).user), action, organization)


@pytest.mark.parametrize(("role", "action"), _cells(MATRIX, allowed=True))
def test_authorize_allows_what_the_matrix_allows(organization, member_of, role, action):
    authorize(Access.for_user(member_of(organization, role).user), action, organization)


@pytest.mark.parametrize(("role", "granted"), role_pairs(MAY_GRANT, False, "on"))
def test_authorize_role_grant_refuses_above_own_role(organization, member_of, role, granted):
    with pytest.raises(PermissionDenied):
        authorize_role_grant(
            Access.for_user(member_of(organization, role).user), organization, granted
        )


@pytest.mark.parametrize("action", list(Action))
def test_operator_is_authorized_for_every_action(organization, action):
    authorize(Access.operator(), action, organization)
    authorize_role_grant(Access.operator(), organization, OWNER)


# --- Proxy tokens: the scopes column of the matrix, through authorize ------------------------


def _token_cells(allowed):
    return [
        pytest.param(scope, Action(action), id=f"{scope}-{action}")
        for action in sorted(set(matrix.ALLOWED) | matrix.KEY_CHANGE_ACTIONS)
        for scope in matrix.TOKEN_SCOPES
        if (matrix.TOKEN_SCOPE_FOR.get(action) == scope) == allowed
    ]


@pytest.mark.parametrize(("scope", "action"), _token_cells(allowed=True))
def test_a_token_may_take_the_actions_its_scope_allows(
    organization, provider_key, make_token, scope, action
):
    access = Access.for_token(make_token(scope))
    authorize(access, action, organization)
    if action in KEY_CHANGE_ACTIONS:
        authorize(access, action, organization, provider_key)


@pytest.mark.parametrize(("scope", "action"), _token_cells(allowed=False))
def test_a_token_may_not_take_an_action_its_scope_does_not_allow(
    organization, provider_key, make_token, scope, action
):
    access = Access.for_token(make_token(scope))
    with pytest.raises(PermissionDenied):
        authorize(access, action, organization)
    with pytest.raises(PermissionDenied):
        authorize(access, action, organization, _object_for(action, organization, provider_key))


@pytest.mark.parametrize("action", list(Action))
def test_a_token_with_every_scope_is_refused_in_another_organization(
    organization, other_organization, make_token, action
):
    outsider = Access.for_token(make_token(*matrix.TOKEN_SCOPES, organization=other_organization))
    with pytest.raises(PermissionDenied):
        authorize(outsider, action, organization)
