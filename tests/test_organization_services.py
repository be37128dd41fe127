"""organizations.services: creating organizations and users, adding, changing and removing members
under the role matrix, the last-owner rule, and the audit trail each write leaves."""

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError

from accounts.services import user_get_or_create
from audit import AuditAction
from audit.models import AuditEvent
from organizations import services
from organizations.access import Access
from organizations.models import Membership, Organization
from tests import matrix
from tests.factories import PASSWORD, UserFactory
from tests.helpers import role_pairs, snapshot
from tests.matrix import ADMIN, MEMBER, OWNER, VIEWER
from tests.test_text import INVISIBLE_NAMES, VISIBLE_NAMES

pytestmark = pytest.mark.django_db

User = get_user_model()
ROLE_IDS = list(matrix.ROLES)
# Whom each role may manage, and which roles it may grant (docs/permissions.md: admins not owners,
# nobody above their own role; members and viewers manage nobody).
MAY_MANAGE = matrix.MAY_MANAGE
MAY_GRANT = matrix.MAY_GRANT


# --- organization_create --------------------------------------------------------------------


def test_organization_create_makes_the_owner_and_records_it():
    user = UserFactory(email="founder@example.com")
    organization = services.organization_create(
        name="  Acme Labs ", slug=" Acme-Labs ", owner=user, actor=Access.operator("tests")
    )
    assert (organization.name, organization.slug) == ("Acme Labs", "acme-labs")
    membership = Membership.objects.get(organization=organization)
    assert (membership.user, membership.role) == (user, OWNER)
    event = AuditEvent.objects.get()
    assert event.action == AuditAction.ORGANIZATION_CREATED
    assert event.organization == organization
    assert event.actor_label == "tests"
    assert event.target_id == str(organization.pk)
    assert event.metadata == {"slug": "acme-labs", "owner": "founder@example.com"}


def test_organization_created_by_a_user_names_them_in_the_audit_trail():
    user = UserFactory(email="founder@example.com")
    services.organization_create(name="Acme", slug="acme", owner=user, actor=Access.for_user(user))
    event = AuditEvent.objects.get()
    assert (event.actor_user, event.actor_label) == (user, "founder@example.com")


@pytest.mark.parametrize(
    "name", ["", "   ", "\t\n", None, 42, "x" * 101, "nul\x00byte", "two\nlines", "\ud800"]
)
def test_organization_create_refuses_a_bad_name_and_writes_nothing(name):
    owner = UserFactory()
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        services.organization_create(name=name, slug="acme", owner=owner, actor=Access.operator())
    assert set(excinfo.value.message_dict) == {"name"}
    assert snapshot() == before


@pytest.mark.parametrize(
    "slug", ["", "   ", None, "has space", "a/b", "dot.ted", "ünïcode", "emoji-🔑", "x" * 51]
)
def test_organization_create_refuses_a_bad_slug_and_writes_nothing(slug):
    owner = UserFactory()
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        services.organization_create(name="Acme", slug=slug, owner=owner, actor=Access.operator())
    assert set(excinfo.value.message_dict) == {"slug"}
    assert snapshot() == before


@pytest.mark.parametrize("slug", ["acme", "ACME", " Acme "])
def test_organization_create_refuses_a_taken_slug_and_writes_nothing(slug):
    services.organization_create(
        name="Acme", slug="acme", owner=UserFactory(), actor=Access.operator()
    )
    other_owner = UserFactory()
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        services.organization_create(
            name="Other", slug=slug, owner=other_owner, actor=Access.operator()
        )
    assert "already taken" in excinfo.value.message_dict["slug"][0]
    assert snapshot() == before
    assert Organization.objects.get(slug="acme").name == "Acme"


def test_slug_taken_by_a_concurrent_writer_is_a_validation_error(monkeypatch):
    """The uniqueness check and the insert are not atomic; the database has the last word."""
    owner = UserFactory()
    services.organization_create(name="Acme", slug="acme", owner=owner, actor=Access.operator())
    monkeypatch.setattr(services, "_clean_slug", lambda slug: slug)  # the check saw it free
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        services.organization_create(name="Late", slug="acme", owner=owner, actor=Access.operator())
    assert set(excinfo.value.message_dict) == {"slug"}
    assert snapshot() == before


@pytest.mark.parametrize("name", INVISIBLE_NAMES.values(), ids=INVISIBLE_NAMES.keys())
def test_organization_create_refuses_an_invisible_name_and_writes_nothing(name):
    owner = UserFactory()
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        services.organization_create(name=name, slug="acme", owner=owner, actor=Access.operator())
    assert set(excinfo.value.message_dict) == {"name"}
    assert snapshot() == before


@pytest.mark.parametrize("name", VISIBLE_NAMES.values(), ids=VISIBLE_NAMES.keys())
def test_organization_create_keeps_a_visible_name_in_any_script(name):
    organization = services.organization_create(
        name=name, slug="acme", owner=UserFactory(), actor=Access.operator()
    )
    assert Organization.objects.get(pk=organization.pk).name == name


# --- organization_create: who may create one for whom -----------------------------------------


def _create_org(owner, actor):
    return services.organization_create(name="Acme", slug="acme", owner=owner, actor=actor)


def _assert_created_for(organization, owner):
    membership = Membership.objects.get(organization=organization)
    assert (membership.user, membership.role) == (owner, OWNER)
    assert AuditEvent.objects.filter(action=AuditAction.ORGANIZATION_CREATED).count() == 1


def test_a_user_may_create_an_organization_for_themselves():
    user = UserFactory()
    _assert_created_for(_create_org(user, Access.for_user(user)), user)


@pytest.mark.parametrize("role", [None, *ROLE_IDS], ids=["no org", *ROLE_IDS])
def test_a_user_may_not_create_an_organization_for_someone_else(organization, member_of, role):
    user = member_of(organization, role).user if role else UserFactory()
    victim = UserFactory()
    before = snapshot()
    with pytest.raises(PermissionDenied):
        _create_org(victim, Access.for_user(user))
    assert snapshot() == before


def test_an_anonymous_user_may_not_create_an_organization():
    owner = UserFactory()
    before = snapshot()
    with pytest.raises(PermissionDenied):
        _create_org(owner, Access.for_user(AnonymousUser()))
    assert snapshot() == before


def test_a_token_may_not_create_an_organization(make_token):
    token = make_token("keys:read", "keys:secret", "keys:write")
    owner = UserFactory()
    before = snapshot()
    with pytest.raises(PermissionDenied):
        _create_org(owner, Access.for_token(token))
    assert snapshot() == before


def test_the_operator_may_create_an_organization_for_anyone():
    owner = UserFactory()
    _assert_created_for(_create_org(owner, Access.operator("tests")), owner)


def test_an_active_superuser_may_create_an_organization_for_anyone():
    superuser = UserFactory(is_superuser=True)
    owner = UserFactory()
    _assert_created_for(_create_org(owner, Access.for_user(superuser)), owner)
    assert not Membership.objects.filter(user=superuser).exists()


def test_a_deactivated_superuser_may_not_create_an_organization_for_someone_else():
    superuser = UserFactory(is_superuser=True, is_active=False)
    owner = UserFactory()
    before = snapshot()
    with pytest.raises(PermissionDenied):
        _create_org(owner, Access.for_user(superuser))
    assert snapshot() == before


def test_authorization_comes_before_validation():
    """A refused caller learns nothing about slugs in use."""
    _create_org(UserFactory(), Access.operator())
    user = UserFactory()
    with pytest.raises(PermissionDenied):
        _create_org(UserFactory(), Access.for_user(user))


# --- user_get_or_create ---------------------------------------------------------------------


def test_user_get_or_create_normalizes_the_email():
    user, created = user_get_or_create(email="  Alice@Example.COM ")
    assert created
    assert (user.username, user.email) == ("alice@example.com", "alice@example.com")


def test_a_user_made_without_a_password_can_still_reset_it():
    from django.contrib.auth.forms import PasswordResetForm

    user, created = user_get_or_create(email="alice@example.com")
    # Not an unusable password, which Django's reset skips (the address would be locked out):
    # a random one nobody knows, which the reset replaces.
    assert created and user.has_usable_password()
    assert list(PasswordResetForm().get_users("alice@example.com")) == [user]


def test_user_get_or_create_finds_the_existing_user_whatever_the_case():
    first, _ = user_get_or_create(email="alice@example.com")
    again, created = user_get_or_create(email="ALICE@example.com ")
    assert (again, created) == (first, False)
    assert User.objects.count() == 1


def test_user_get_or_create_sets_a_valid_password_for_a_new_user():
    user, created = user_get_or_create(
        email="bob@example.com", password="long unusual passphrase 42"
    )
    assert created
    assert authenticate(username="bob@example.com", password="long unusual passphrase 42") == user


def test_user_get_or_create_refuses_a_password_for_an_existing_user():
    user = UserFactory(email="carol@example.com")
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        user_get_or_create(email="carol@example.com", password="another passphrase 42")
    assert set(excinfo.value.message_dict) == {"password"}
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert snapshot() == before


@pytest.mark.parametrize(
    "password",
    ["", "short", "password123", "12345678901234", "dave@example.com", "dave.example"],
    ids=["empty", "too-short", "common", "numeric", "same-as-email", "like-email"],
)
def test_user_get_or_create_refuses_a_weak_password_and_creates_nobody(password):
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        user_get_or_create(email="dave@example.com", password=password)
    assert set(excinfo.value.message_dict) == {"password"}
    assert snapshot() == before


@pytest.mark.parametrize(
    "email", ["", "   ", None, "not-an-email", "a@", "@example.com", "a b@c.d"]
)
def test_user_get_or_create_refuses_a_bad_email(email):
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        user_get_or_create(email=email)
    assert set(excinfo.value.message_dict) == {"email"}
    assert snapshot() == before


# --- membership_add -------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "granted"), role_pairs(MAY_GRANT, True, "adds"))
def test_role_may_add_a_member_with_role(organization, actor_of, role, granted):
    actor = actor_of(role)
    user = UserFactory()
    membership = services.membership_add(
        organization=organization, user=user, role=granted, actor=actor
    )
    assert Membership.objects.get(user=user, organization=organization).role == granted
    event = AuditEvent.objects.get()
    assert event.action == AuditAction.MEMBER_ADDED
    assert (event.actor_user, event.actor_label) == (actor.user, actor.user.email)
    assert event.organization == organization
    assert (event.target_type, event.target_id) == ("organizations.membership", str(membership.pk))
    assert event.target_label == user.email
    assert event.metadata == {"user": user.email, "role": granted}


@pytest.mark.parametrize(("role", "granted"), role_pairs(MAY_GRANT, False, "adds"))
def test_role_may_not_add_a_member_with_role(organization, actor_of, role, granted):
    actor = actor_of(role)
    user = UserFactory()
    before = snapshot()
    with pytest.raises(PermissionDenied):
        services.membership_add(organization=organization, user=user, role=granted, actor=actor)
    assert snapshot() == before


def test_member_cannot_add_members(organization, actor_of):
    with pytest.raises(PermissionDenied):
        services.membership_add(
            organization=organization, user=UserFactory(), role=VIEWER, actor=actor_of(MEMBER)
        )
    assert not AuditEvent.objects.exists()


def test_owner_of_another_organization_cannot_add_members_here(
    organization, other_organization, actor_of
):
    actor = actor_of(OWNER, org=other_organization)
    before = snapshot()
    with pytest.raises(PermissionDenied):
        services.membership_add(organization=organization, user=actor.user, role=OWNER, actor=actor)
    assert snapshot() == before


def test_adding_an_existing_member_again_is_a_validation_error(organization, member_of, owner):
    existing = member_of(organization, VIEWER)
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        services.membership_add(
            organization=organization, user=existing.user, role=ADMIN, actor=Access.for_user(owner)
        )
    assert "already a member" in excinfo.value.message_dict["email"][0]
    assert snapshot() == before


@pytest.mark.parametrize("role", ["", "boss", "Owner", None])
def test_adding_with_an_unknown_role_is_a_validation_error(organization, owner, role):
    user = UserFactory()
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        services.membership_add(
            organization=organization, user=user, role=role, actor=Access.for_user(owner)
        )
    assert set(excinfo.value.message_dict) == {"role"}
    assert snapshot() == before


def test_operator_may_add_an_owner(organization):
    user = UserFactory()
    services.membership_add(
        organization=organization, user=user, role=OWNER, actor=Access.operator("ops")
    )
    assert Membership.objects.get(user=user).role == OWNER
    assert AuditEvent.objects.get().actor_label == "ops"


# --- membership_change_role -----------------------------------------------------------------


def _change_cells(allowed):
    return [
        pytest.param(actor, target, new, id=f"{actor}-makes-{target}-{new}")
        for actor in ROLE_IDS
        for target in ROLE_IDS
        for new in ROLE_IDS
        if target != new and (target in MAY_MANAGE[actor] and new in MAY_GRANT[actor]) == allowed
    ]


@pytest.mark.parametrize(("role", "target", "new"), _change_cells(allowed=True))
def test_role_may_change_target_role(organization, owner, member_of, actor_of, role, target, new):
    actor = actor_of(role)
    membership = member_of(organization, target)
    services.membership_change_role(membership=membership, role=new, actor=actor)
    membership.refresh_from_db()
    assert membership.role == new
    event = AuditEvent.objects.get()
    assert event.action == AuditAction.MEMBER_ROLE_CHANGED
    assert event.actor_label == actor.user.email
    assert event.target_label == membership.user.email
    assert event.metadata == {"user": membership.user.email, "from": target, "to": new}


@pytest.mark.parametrize(("role", "target", "new"), _change_cells(allowed=False))
def test_role_may_not_change_target_role(
    organization, owner, member_of, actor_of, role, target, new
):
    actor = actor_of(role)
    membership = member_of(organization, target)
    before = snapshot()
    with pytest.raises(PermissionDenied):
        services.membership_change_role(membership=membership, role=new, actor=actor)
    assert snapshot() == before


def test_admin_cannot_change_an_owners_role(organization, owner, actor_of):
    owner_membership = Membership.objects.get(user=owner)
    with pytest.raises(PermissionDenied):
        services.membership_change_role(
            membership=owner_membership, role=MEMBER, actor=actor_of(ADMIN)
        )
    owner_membership.refresh_from_db()
    assert owner_membership.role == OWNER
    assert not AuditEvent.objects.exists()


def test_admin_cannot_grant_owner(organization, owner, member_of, actor_of):
    membership = member_of(organization, MEMBER)
    with pytest.raises(PermissionDenied):
        services.membership_change_role(membership=membership, role=OWNER, actor=actor_of(ADMIN))
    membership.refresh_from_db()
    assert membership.role == MEMBER


def test_admin_cannot_promote_themselves_to_owner(organization, owner, member_of):
    admin = member_of(organization, ADMIN)
    with pytest.raises(PermissionDenied):
        services.membership_change_role(
            membership=admin, role=OWNER, actor=Access.for_user(admin.user)
        )
    admin.refresh_from_db()
    assert admin.role == ADMIN


def test_admin_holding_a_stale_copy_cannot_change_someone_since_made_owner(
    organization, owner, member_of, actor_of
):
    """The rank rule judges the role the target has now, not the caller's copy of it."""
    admin = actor_of(ADMIN)
    stale = member_of(organization, MEMBER)
    Membership.objects.filter(pk=stale.pk).update(role=OWNER)
    before = snapshot()
    with pytest.raises(PermissionDenied):
        services.membership_change_role(membership=stale, role=VIEWER, actor=admin)
    with pytest.raises(PermissionDenied):
        services.membership_remove(membership=stale, actor=admin)
    assert snapshot() == before
    assert Membership.objects.get(pk=stale.pk).role == OWNER


def test_changing_to_the_same_role_records_nothing(organization, owner, member_of):
    membership = member_of(organization, MEMBER)
    services.membership_change_role(
        membership=membership, role=MEMBER, actor=Access.for_user(owner)
    )
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("role", ["", "boss", None])
def test_changing_to_an_unknown_role_is_a_validation_error(organization, owner, member_of, role):
    membership = member_of(organization, MEMBER)
    before = snapshot()
    with pytest.raises(ValidationError):
        services.membership_change_role(
            membership=membership, role=role, actor=Access.for_user(owner)
        )
    assert snapshot() == before


def test_owner_of_another_organization_cannot_change_roles_here(
    organization, other_organization, member_of, actor_of
):
    membership = member_of(organization, VIEWER)
    with pytest.raises(PermissionDenied):
        services.membership_change_role(
            membership=membership, role=ADMIN, actor=actor_of(OWNER, org=other_organization)
        )
    membership.refresh_from_db()
    assert membership.role == VIEWER


# --- membership_remove ----------------------------------------------------------------------


@pytest.mark.parametrize(("role", "target"), role_pairs(MAY_MANAGE, True, "removes"))
def test_role_may_remove_target(organization, owner, member_of, actor_of, role, target):
    actor = actor_of(role)
    membership = member_of(organization, target)
    services.membership_remove(membership=membership, actor=actor)
    assert not Membership.objects.filter(pk=membership.pk).exists()
    event = AuditEvent.objects.get()
    assert event.action == AuditAction.MEMBER_REMOVED
    assert event.actor_label == actor.user.email
    assert event.organization == organization
    assert event.target_label == membership.user.email
    assert event.metadata == {"user": membership.user.email, "role": target}


@pytest.mark.parametrize(("role", "target"), role_pairs(MAY_MANAGE, False, "removes"))
def test_role_may_not_remove_target(organization, owner, member_of, actor_of, role, target):
    actor = actor_of(role)
    membership = member_of(organization, target)
    before = snapshot()
    with pytest.raises(PermissionDenied):
        services.membership_remove(membership=membership, actor=actor)
    assert snapshot() == before


def test_owner_of_another_organization_cannot_remove_members_here(
    organization, other_organization, member_of, actor_of
):
    membership = member_of(organization, VIEWER)
    with pytest.raises(PermissionDenied):
        services.membership_remove(
            membership=membership, actor=actor_of(OWNER, org=other_organization)
        )
    assert Membership.objects.filter(pk=membership.pk).exists()


# --- Last-owner protection ------------------------------------------------------------------


@pytest.mark.parametrize("new", [ADMIN, MEMBER, VIEWER])
@pytest.mark.parametrize("by", ["self", "operator"])
def test_sole_owner_cannot_be_demoted(organization, owner, new, by):
    membership = Membership.objects.get(user=owner)
    actor = Access.for_user(owner) if by == "self" else Access.operator()
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        services.membership_change_role(membership=membership, role=new, actor=actor)
    assert "at least one owner" in excinfo.value.message_dict["role"][0]
    assert snapshot() == before


@pytest.mark.parametrize("by", ["self", "operator"])
def test_sole_owner_cannot_be_removed(organization, owner, by):
    membership = Membership.objects.get(user=owner)
    actor = Access.for_user(owner) if by == "self" else Access.operator()
    before = snapshot()
    with pytest.raises(ValidationError):
        services.membership_remove(membership=membership, actor=actor)
    assert snapshot() == before


def test_with_two_owners_one_can_be_demoted(organization, owner, member_of):
    second = member_of(organization, OWNER)
    services.membership_change_role(membership=second, role=ADMIN, actor=Access.for_user(owner))
    second.refresh_from_db()
    assert second.role == ADMIN
    assert AuditEvent.objects.get().metadata == {
        "user": second.user.email,
        "from": OWNER,
        "to": ADMIN,
    }
    # Now the first owner is the only one again.
    with pytest.raises(ValidationError):
        services.membership_change_role(
            membership=Membership.objects.get(user=owner), role=ADMIN, actor=Access.for_user(owner)
        )


def test_with_two_owners_one_can_step_down_or_leave(organization, owner, member_of):
    second = member_of(organization, OWNER)
    services.membership_change_role(
        membership=Membership.objects.get(user=owner), role=MEMBER, actor=Access.for_user(owner)
    )
    assert Membership.objects.get(user=owner).role == MEMBER
    with pytest.raises(ValidationError):
        services.membership_remove(membership=second, actor=Access.for_user(second.user))
    assert Membership.objects.get(pk=second.pk).role == OWNER


def test_with_two_owners_one_can_remove_the_other(organization, owner, member_of):
    second = member_of(organization, OWNER)
    services.membership_remove(membership=second, actor=Access.for_user(owner))
    assert list(Membership.objects.values_list("user", flat=True)) == [owner.pk]


def test_owner_can_promote_another_to_owner_and_then_step_down(organization, owner, member_of):
    successor = member_of(organization, MEMBER)
    services.membership_change_role(membership=successor, role=OWNER, actor=Access.for_user(owner))
    services.membership_change_role(
        membership=Membership.objects.get(user=owner), role=ADMIN, actor=Access.for_user(owner)
    )
    assert Membership.objects.get(pk=successor.pk).role == OWNER
    assert Membership.objects.get(user=owner).role == ADMIN
    assert [e.metadata["to"] for e in AuditEvent.objects.order_by("id")] == [OWNER, ADMIN]


def test_owners_of_another_organization_do_not_count(organization, owner, member_of):
    member_of(Organization.objects.create(name="Elsewhere", slug="elsewhere"), OWNER, user=owner)
    with pytest.raises(ValidationError):
        services.membership_change_role(
            membership=Membership.objects.get(user=owner, organization=organization),
            role=ADMIN,
            actor=Access.for_user(owner),
        )
