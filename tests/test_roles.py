import pytest
from django.db import IntegrityError

from organizations import roles
from organizations.models import Membership
from tests import matrix
from tests.factories import UserFactory

ROLE_IDS = list(matrix.ROLES)


def test_registry_lists_owner_admin_member_viewer_highest_first():
    assert [role.id for role in roles.ROLES] == ROLE_IDS
    priorities = [role.priority for role in roles.ROLES]
    assert priorities == sorted(priorities, reverse=True)
    assert len(set(priorities)) == len(priorities)


def test_each_role_holds_every_scope_of_the_roles_below_it():
    for higher, lower in zip(roles.ROLES, roles.ROLES[1:], strict=False):
        assert lower.scopes <= higher.scopes, f"{higher.id} lacks scopes of {lower.id}"
        assert lower.scopes != higher.scopes, f"{higher.id} adds nothing over {lower.id}"


@pytest.mark.parametrize("role_id", ROLE_IDS)
def test_role_has_exactly_the_scopes_of_the_design_matrix(role_id):
    assert roles.get_role(role_id).scopes == matrix.SCOPES[role_id]


@pytest.mark.parametrize("role_id", ROLE_IDS)
def test_get_role_returns_the_registered_role(role_id):
    role = roles.get_role(role_id)
    assert role.id == role_id
    assert roles.is_role(role_id)


@pytest.mark.parametrize("role_id", ["", "Owner", "superuser", " admin", None])
def test_unknown_role_id_is_not_a_role(role_id):
    assert not roles.is_role(role_id)
    with pytest.raises(KeyError):
        roles.get_role(role_id)


def test_outranks_or_equals_follows_priority():
    assert roles.OWNER.outranks_or_equals(roles.ADMIN)
    assert roles.ADMIN.outranks_or_equals(roles.ADMIN)
    assert not roles.ADMIN.outranks_or_equals(roles.OWNER)
    assert not roles.VIEWER.outranks_or_equals(roles.MEMBER)


def test_choices_follow_the_registry_order():
    assert roles.CHOICES == [
        ("owner", "Owner"),
        ("admin", "Admin"),
        ("member", "Member"),
        ("viewer", "Viewer"),
    ]


@pytest.mark.parametrize("role_id", ROLE_IDS)
def test_membership_role_obj_is_the_registry_role(organization, member_of, role_id):
    assert member_of(organization, role_id).role_obj is roles.get_role(role_id)


def test_database_refuses_an_unknown_role(organization):
    with pytest.raises(IntegrityError):
        Membership.objects.create(user=UserFactory(), organization=organization, role="boss")


def test_database_refuses_a_second_membership_in_one_organization(organization, member_of):
    membership = member_of(organization, roles.VIEWER.id)
    with pytest.raises(IntegrityError):
        Membership.objects.create(
            user=membership.user, organization=organization, role=roles.ADMIN.id
        )
