"""organizations.invitations: inviting an address under the role matrix, the link's token stored
as a digest only, acceptance by the invited person alone (re-checking the inviter's rights),
revocation, replacement on re-invite, and the audit trail each write leaves."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import AuditAction
from audit.models import AuditEvent
from organizations import invitations
from organizations.access import Access
from organizations.invitations import (
    invitation_accept,
    invitation_create,
    invitation_for_token,
    invitation_revoke,
    invitation_token_digest,
    pending_invitations,
)
from organizations.models import Invitation, Membership
from tests import matrix
from tests.factories import InvitationFactory, UserFactory
from tests.helpers import role_pairs, snapshot
from tests.matrix import ADMIN, MEMBER, OWNER, VIEWER

pytestmark = pytest.mark.django_db

ROLE_IDS = list(matrix.ROLES)
# Which roles each role may invite someone with: never above its own; members and viewers none.
MAY_GRANT = matrix.MAY_GRANT


def _expire(invitation):
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


@pytest.fixture
def invite(organization, owner):
    """`invite(email, role=MEMBER, by=owner)`: an invitation to `organization` made through the
    service by a user (or by the operator with `by=None`); the link's token is `.raw`."""

    def make(email="invitee@example.com", role=MEMBER, by=owner, org=organization):
        return InvitationFactory(organization=org, email=email, role=role, invited_by=by)

    return make


# --- The token --------------------------------------------------------------------------------


def test_the_token_is_prefixed_and_every_invitation_gets_its_own(invite):
    first, second = invite("a@example.com"), invite("b@example.com")
    for raw in (first.raw, second.raw):
        assert raw.startswith("kvi_")
        assert len(raw) == 4 + 43
        assert invitations.looks_like_invitation_token(raw)
    assert first.raw != second.raw
    assert first.digest != second.digest


def test_the_digest_is_sha256_hex():
    """A fixed vector (from `sha256sum`), so the test cannot agree with a wrong digest."""
    assert invitation_token_digest("kvi_" + "Az09-_" * 7 + "x") == (
        "29a8d4e1e0e54df5bebc2e42bdcb724c79d2dbba083d537aed7aeed7c7737e12"
    )


def test_only_the_digest_of_the_token_is_stored(invite):
    invitation = invite()
    assert invitation.digest == invitation_token_digest(invitation.raw)
    row = Invitation.objects.filter(pk=invitation.pk).values().get()
    assert row["digest"] == invitation.digest
    for column, value in row.items():
        assert invitation.raw not in str(value), column
        assert invitation.raw[4:] not in str(value), column


def test_str_and_repr_show_neither_the_token_nor_the_digest(organization, invite):
    invitation = invite("Bob@Example.com", role=ADMIN)
    assert str(invitation) == f"Invitation of bob@example.com to {organization.name} as admin"
    for text in (str(invitation), repr(invitation)):
        assert invitation.raw not in text
        assert invitation.raw[4:] not in text
        assert invitation.digest not in text


# --- invitation_for_token ---------------------------------------------------------------------


def test_the_token_finds_its_invitation_with_organization_and_inviter(
    invite, owner, django_assert_num_queries
):
    invitation = invite()
    with django_assert_num_queries(1):
        found = invitation_for_token(invitation.raw)
        assert (found, found.organization, found.invited_by) == (
            invitation,
            invitation.organization,
            owner,
        )


def test_the_token_finds_its_invitation_whatever_its_state(invite, owner):
    used, revoked, expired = invite("a@example.com"), invite("b@example.com"), invite()
    invitation_accept(invitation=used, user=UserFactory(email="a@example.com"))
    invitation_revoke(invitation=revoked, actor=Access.for_user(owner))
    _expire(expired)
    assert invitation_for_token(used.raw).accepted_at is not None
    assert invitation_for_token(revoked.raw).revoked_at is not None
    assert invitation_for_token(expired.raw).is_expired


def test_an_unknown_token_finds_nothing(invite):
    invite()
    assert invitation_for_token("kvi_" + "A" * 43) is None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda raw: "",
        lambda raw: None,
        lambda raw: 42,
        lambda raw: raw[:-1],
        lambda raw: raw + "A",
        lambda raw: raw[4:],
        lambda raw: "kvp_" + raw[4:],
        lambda raw: " " + raw,
        lambda raw: raw + "\n",
        lambda raw: raw[:-1] + "é",
        lambda raw: raw.encode(),
        lambda raw: invitation_token_digest(raw),
    ],
    ids=[
        "empty",
        "none",
        "int",
        "truncated",
        "too-long",
        "no-prefix",
        "proxy-prefix",
        "leading-space",
        "trailing-newline",
        "non-ascii",
        "bytes",
        "the-digest",
    ],
)
def test_a_malformed_token_finds_nothing(invite, mangle):
    invitation = invite()
    assert invitation_for_token(mangle(invitation.raw)) is None


# --- invitation_create ------------------------------------------------------------------------


def test_owner_invites_an_address_and_it_is_recorded(organization, owner):
    before = timezone.now()
    invitation, raw = invitation_create(
        organization=organization,
        email="  Bob@Example.COM ",
        role=ADMIN,
        actor=Access.for_user(owner),
    )
    invitation.refresh_from_db()
    assert (invitation.organization, invitation.email, invitation.role) == (
        organization,
        "bob@example.com",
        ADMIN,
    )
    assert (invitation.invited_by, invitation.invited_by_operator) == (owner, False)
    assert invitation.accepted_at is invitation.revoked_at is invitation.accepted_by is None
    assert before + timedelta(days=7) <= invitation.expires_at <= timezone.now() + timedelta(days=7)
    assert invitation.is_pending
    event = AuditEvent.objects.get()
    assert event.action == AuditAction.INVITATION_CREATED
    assert (event.actor_user, event.organization) == (owner, organization)
    assert (event.target_type, event.target_id) == ("organizations.invitation", str(invitation.pk))
    assert event.target_label == "bob@example.com"
    assert event.metadata == {
        "email": "bob@example.com",
        "role": ADMIN,
        "expires_at": invitation.expires_at.isoformat(),
    }
    assert raw not in str(AuditEvent.objects.values().get())


def test_the_validity_comes_from_the_setting(organization, owner, settings):
    settings.KEYVAULT_INVITATION_DAYS = 2
    invitation, _ = invitation_create(
        organization=organization,
        email="bob@example.com",
        role=MEMBER,
        actor=Access.for_user(owner),
    )
    assert timedelta(days=2) - timedelta(minutes=1) < invitation.expires_at - timezone.now()
    assert invitation.expires_at - timezone.now() <= timedelta(days=2)


def test_the_operator_invites_without_an_inviter(organization):
    invitation, _ = invitation_create(
        organization=organization, email="bob@example.com", role=OWNER, actor=Access.operator("ops")
    )
    assert (invitation.invited_by, invitation.invited_by_operator) == (None, True)
    assert AuditEvent.objects.get().actor_label == "ops"


@pytest.mark.parametrize(("role", "granted"), role_pairs(MAY_GRANT, True, "invites"))
def test_role_may_invite_with_role(organization, owner, actor_of, role, granted):
    invitation, _ = invitation_create(
        organization=organization, email="bob@example.com", role=granted, actor=actor_of(role)
    )
    assert Invitation.objects.get(pk=invitation.pk).role == granted


@pytest.mark.parametrize(("role", "granted"), role_pairs(MAY_GRANT, False, "invites"))
def test_role_may_not_invite_with_role(organization, owner, actor_of, role, granted):
    actor = actor_of(role)
    before = snapshot()
    with pytest.raises(PermissionDenied):
        invitation_create(
            organization=organization, email="bob@example.com", role=granted, actor=actor
        )
    assert snapshot() == before


def test_admin_cannot_invite_an_owner(organization, owner, actor_of):
    admin = actor_of(ADMIN)
    before = snapshot()
    with pytest.raises(PermissionDenied):
        invitation_create(
            organization=organization, email="boss@example.com", role=OWNER, actor=admin
        )
    assert snapshot() == before
    assert not Invitation.objects.exists()


@pytest.mark.parametrize("role", [OWNER, ADMIN])
def test_manager_of_another_organization_cannot_invite_here(
    organization, other_organization, owner, actor_of, role
):
    actor = actor_of(role, org=other_organization)
    before = snapshot()
    with pytest.raises(PermissionDenied):
        invitation_create(
            organization=organization, email="x@example.com", role=VIEWER, actor=actor
        )
    assert snapshot() == before


def test_a_token_cannot_invite(organization, make_token):
    actor = Access.for_token(make_token("keys:read", "keys:secret", "keys:write"))
    before = snapshot()
    with pytest.raises(PermissionDenied):
        invitation_create(
            organization=organization, email="x@example.com", role=VIEWER, actor=actor
        )
    assert snapshot() == before


def test_a_deactivated_admin_cannot_invite(organization, owner, actor_of):
    actor = actor_of(ADMIN)
    actor.user.is_active = False
    actor.user.save()
    with pytest.raises(PermissionDenied):
        invitation_create(
            organization=organization, email="x@example.com", role=VIEWER, actor=actor
        )
    assert not Invitation.objects.exists()


def test_authorization_comes_before_validation(organization, owner, member_of, actor_of):
    """A refused caller learns nothing about who is a member."""
    existing = member_of(organization, VIEWER)
    with pytest.raises(PermissionDenied):
        invitation_create(
            organization=organization,
            email=existing.user.email,
            role=VIEWER,
            actor=actor_of(MEMBER),
        )


@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_inviting_a_member_is_a_validation_error(organization, owner, member_of, case):
    existing = member_of(organization, VIEWER, user=UserFactory(email="carol@example.com"))
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        invitation_create(
            organization=organization,
            email=case(existing.user.email),
            role=ADMIN,
            actor=Access.for_user(owner),
        )
    assert "already a member" in excinfo.value.message_dict["email"][0]
    assert snapshot() == before


def test_a_member_elsewhere_can_be_invited(organization, other_organization, owner, member_of):
    elsewhere = member_of(other_organization, OWNER)
    invitation, _ = invitation_create(
        organization=organization,
        email=elsewhere.user.email,
        role=VIEWER,
        actor=Access.for_user(owner),
    )
    assert invitation.is_pending


@pytest.mark.parametrize("email", ["", "   ", None, "not-an-email", "a@", "a b@c.d", 42])
def test_inviting_a_bad_email_is_a_validation_error(organization, owner, email):
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        invitation_create(
            organization=organization, email=email, role=MEMBER, actor=Access.for_user(owner)
        )
    assert set(excinfo.value.message_dict) == {"email"}
    assert snapshot() == before


@pytest.mark.parametrize("role", ["", "boss", "Owner", None])
def test_inviting_with_an_unknown_role_is_a_validation_error(organization, owner, role):
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        invitation_create(
            organization=organization,
            email="bob@example.com",
            role=role,
            actor=Access.for_user(owner),
        )
    assert set(excinfo.value.message_dict) == {"role"}
    assert snapshot() == before


# --- Re-inviting ------------------------------------------------------------------------------


def test_reinviting_replaces_the_pending_invitation_and_its_link(invite, owner):
    old = invite("bob@example.com", role=VIEWER)
    new = invite("BOB@example.com", role=MEMBER)
    old.refresh_from_db()
    assert old.revoked_at is not None
    assert [i.pk for i in pending_invitations(organization=new.organization)] == [new.pk]
    bob = UserFactory(email="bob@example.com")
    with pytest.raises(ValidationError) as excinfo:
        invitation_accept(invitation=invitation_for_token(old.raw), user=bob)
    assert excinfo.value.code == "revoked"
    assert invitation_accept(invitation=invitation_for_token(new.raw), user=bob).role == MEMBER
    replaced = AuditEvent.objects.get(action=AuditAction.INVITATION_REVOKED)
    assert (replaced.target_id, replaced.actor_user) == (str(old.pk), owner)
    assert replaced.metadata == {"email": "bob@example.com", "role": VIEWER, "reason": "replaced"}


def test_reinviting_after_expiry_retires_the_expired_invitation(invite):
    old = invite("bob@example.com")
    _expire(old)
    new = invite("bob@example.com")
    old.refresh_from_db()
    assert old.revoked_at is not None
    assert new.is_pending


def test_admin_cannot_replace_a_pending_owner_invitation(organization, invite, actor_of):
    """Replacing is revoking, and nobody revokes an invitation to a role above their own."""
    old = invite("boss@example.com", role=OWNER)
    admin = actor_of(ADMIN)
    before = snapshot()
    with pytest.raises(PermissionDenied):
        invitation_create(
            organization=organization, email="boss@example.com", role=VIEWER, actor=admin
        )
    assert snapshot() == before
    assert Invitation.objects.get(pk=old.pk).is_pending


def test_admin_may_replace_an_expired_owner_invitation(organization, invite, actor_of):
    old = invite("boss@example.com", role=OWNER)
    _expire(old)
    new, _ = invitation_create(
        organization=organization, email="boss@example.com", role=VIEWER, actor=actor_of(ADMIN)
    )
    assert new.is_pending


def test_an_invitation_inserted_concurrently_is_a_validation_error(
    organization, owner, invite, monkeypatch
):
    """The lock covers rows that exist; the database's constraint has the last word."""
    invite("bob@example.com")
    monkeypatch.setattr(invitations, "_revoke_replaced", lambda **kwargs: None)
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        invitation_create(
            organization=organization,
            email="bob@example.com",
            role=MEMBER,
            actor=Access.for_user(owner),
        )
    assert set(excinfo.value.message_dict) == {"email"}
    assert snapshot() == before


def test_the_database_allows_one_pending_invitation_per_address_and_organization(invite):
    first = invite("bob@example.com")

    def insert(email, organization=first.organization):
        Invitation.objects.create(
            organization=organization,
            email=email,
            role=MEMBER,
            digest=invitation_token_digest(invitations.generate_invitation_token()),
            expires_at=timezone.now() + timedelta(days=1),
        )

    for email in ("bob@example.com", "Bob@Example.com"):
        with pytest.raises(IntegrityError), transaction.atomic():
            insert(email)
    Invitation.objects.filter(pk=first.pk).update(revoked_at=timezone.now())
    insert("bob@example.com")
    assert Invitation.objects.filter(email="bob@example.com").count() == 2


def test_the_same_address_may_be_invited_to_two_organizations(invite, other_organization):
    invite("bob@example.com")
    invite("bob@example.com", by=None, org=other_organization)
    assert Invitation.objects.filter(revoked_at__isnull=True).count() == 2


# --- invitation_accept ------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLE_IDS)
def test_accepting_joins_with_the_role_and_is_recorded(organization, owner, invite, role):
    invitation = invite("bob@example.com", role=role)
    bob = UserFactory(email="Bob@Example.com")
    membership = invitation_accept(invitation=invitation, user=bob, ip="203.0.113.9")
    assert Membership.objects.get(user=bob, organization=organization) == membership
    assert membership.role == role
    invitation.refresh_from_db()
    assert invitation.accepted_by == bob
    assert invitation.accepted_at is not None
    assert not invitation.is_pending
    added = AuditEvent.objects.get(action=AuditAction.MEMBER_ADDED)
    assert (added.actor_user, added.ip_address, added.organization) == (
        bob,
        "203.0.113.9",
        organization,
    )
    assert (added.target_type, added.target_id) == ("organizations.membership", str(membership.pk))
    assert added.target_label == bob.email
    assert added.metadata == {
        "user": bob.email,
        "role": role,
        "via": "invitation",
        "invited_by": owner.email,
    }
    accepted = AuditEvent.objects.get(action=AuditAction.INVITATION_ACCEPTED)
    assert (accepted.actor_user, accepted.target_id) == (bob, str(invitation.pk))
    assert accepted.metadata == {
        "email": "bob@example.com",
        "role": role,
        "invited_by": owner.email,
    }


def test_no_audit_event_carries_the_token_or_its_digest(invite, owner):
    old = invite("bob@example.com")
    invitation = invite("bob@example.com")
    invitation_accept(invitation=invitation, user=UserFactory(email="bob@example.com"))
    other = invite("carol@example.com")
    invitation_revoke(invitation=other, actor=Access.for_user(owner))
    events = list(AuditEvent.objects.values())
    assert {e["action"] for e in events} == {
        AuditAction.INVITATION_CREATED,
        AuditAction.INVITATION_REVOKED,
        AuditAction.INVITATION_ACCEPTED,
        AuditAction.MEMBER_ADDED,
    }
    for event in events:
        for secret in (old, invitation, other):
            assert secret.raw[4:] not in str(event)
            assert secret.digest not in str(event)


def test_accepting_twice_is_refused(organization, invite):
    invitation = invite("bob@example.com")
    bob = UserFactory(email="bob@example.com")
    invitation_accept(invitation=invitation, user=bob)
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        invitation_accept(invitation=invitation, user=bob)  # the caller's copy is stale
    assert excinfo.value.code == "used"
    assert snapshot() == before


def test_a_used_link_does_not_let_a_removed_member_back_in(organization, owner, invite):
    invitation = invite("bob@example.com")
    bob = UserFactory(email="bob@example.com")
    invitation_accept(invitation=invitation, user=bob).delete()
    with pytest.raises(ValidationError) as excinfo:
        invitation_accept(invitation=invitation_for_token(invitation.raw), user=bob)
    assert excinfo.value.code == "used"
    assert not Membership.objects.filter(user=bob).exists()


def test_an_expired_invitation_is_refused(invite):
    invitation = invite("bob@example.com")
    _expire(invitation)
    bob = UserFactory(email="bob@example.com")
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        invitation_accept(invitation=invitation, user=bob)
    assert excinfo.value.code == "expired"
    assert snapshot() == before


def test_a_revoked_invitation_is_refused(invite, owner):
    invitation = invite("bob@example.com")
    invitation_revoke(invitation=invitation, actor=Access.for_user(owner))
    bob = UserFactory(email="bob@example.com")
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        invitation_accept(invitation=invitation, user=bob)
    assert excinfo.value.code == "revoked"
    assert snapshot() == before


@pytest.mark.parametrize(
    "email", ["mallory@example.com", "bob@example.co", "bob@example.com.evil.test", ""]
)
def test_a_forwarded_link_does_not_let_someone_else_in(invite, email):
    invitation = invite("bob@example.com")
    mallory = UserFactory(username=email or "mallory", email=email)
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        invitation_accept(invitation=invitation, user=mallory)
    assert excinfo.value.code == "wrong_user"
    assert snapshot() == before
    assert Invitation.objects.get(pk=invitation.pk).is_pending


def test_a_deactivated_user_cannot_accept(invite):
    invitation = invite("bob@example.com")
    bob = UserFactory(email="bob@example.com", is_active=False)
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        invitation_accept(invitation=invitation, user=bob)
    assert excinfo.value.code == "inactive"
    assert snapshot() == before


def test_an_anonymous_user_cannot_accept(invite):
    invitation = invite("bob@example.com")
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        invitation_accept(invitation=invitation, user=AnonymousUser())
    assert excinfo.value.code == "inactive"
    assert snapshot() == before


def test_an_existing_member_cannot_accept(organization, invite, member_of):
    invitation = invite("bob@example.com", role=ADMIN)
    bob = member_of(organization, VIEWER, user=UserFactory(email="bob@example.com")).user
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        invitation_accept(invitation=invitation, user=bob)
    assert excinfo.value.code == "already_member"
    assert snapshot() == before
    assert Membership.objects.get(user=bob).role == VIEWER


# --- invitation_accept: the inviter's rights at acceptance -------------------------------------


@pytest.fixture
def admin_invitation(organization, owner, member_of, invite):
    """An invitation as member sent by an admin; the admin's membership is `.inviter`."""
    inviter = member_of(organization, ADMIN)
    invitation = invite("bob@example.com", role=MEMBER, by=inviter.user)
    invitation.inviter = inviter
    return invitation


def _refused_for_inviter(invitation):
    bob = UserFactory(email="bob@example.com")
    before = snapshot()
    with pytest.raises(ValidationError) as excinfo:
        invitation_accept(invitation=invitation, user=bob)
    assert excinfo.value.code == "inviter_lost_rights"
    assert snapshot() == before


def test_an_invitation_from_a_removed_inviter_is_refused(admin_invitation):
    admin_invitation.inviter.delete()
    _refused_for_inviter(admin_invitation)


@pytest.mark.parametrize("demoted_to", [MEMBER, VIEWER])
def test_an_invitation_from_a_demoted_inviter_is_refused(admin_invitation, demoted_to):
    Membership.objects.filter(pk=admin_invitation.inviter.pk).update(role=demoted_to)
    _refused_for_inviter(admin_invitation)


def test_an_owner_invitation_from_an_owner_since_made_admin_is_refused(
    organization, owner, member_of, invite
):
    second_owner = member_of(organization, OWNER)
    invitation = invite("bob@example.com", role=OWNER, by=second_owner.user)
    Membership.objects.filter(pk=second_owner.pk).update(role=ADMIN)
    _refused_for_inviter(invitation)


def test_an_invitation_from_a_deactivated_inviter_is_refused(admin_invitation):
    admin_invitation.inviter.user.is_active = False
    admin_invitation.inviter.user.save()
    _refused_for_inviter(admin_invitation)


def test_an_invitation_from_a_deleted_inviter_is_refused(admin_invitation):
    """A deleted account leaves no inviter behind; that is not an operator's invitation."""
    admin_invitation.inviter.user.delete()
    admin_invitation.refresh_from_db()
    assert admin_invitation.invited_by is None
    _refused_for_inviter(admin_invitation)


def test_an_invitation_from_an_inviter_still_able_to_grant_the_role_is_honoured(admin_invitation):
    promoted = admin_invitation.inviter
    Membership.objects.filter(pk=promoted.pk).update(role=OWNER)
    bob = UserFactory(email="bob@example.com")
    assert invitation_accept(invitation=admin_invitation, user=bob).role == MEMBER


def test_an_operator_invitation_is_honoured(organization, invite):
    invitation = invite("bob@example.com", role=OWNER, by=None)
    bob = UserFactory(email="bob@example.com")
    assert invitation_accept(invitation=invitation, user=bob).role == OWNER
    added = AuditEvent.objects.get(action=AuditAction.MEMBER_ADDED)
    assert added.metadata["invited_by"] is None


def test_a_superuser_invitation_is_honoured_while_they_are_active(organization, owner):
    root = UserFactory(is_superuser=True)
    first, _ = invitation_create(
        organization=organization, email="bob@example.com", role=OWNER, actor=Access.for_user(root)
    )
    second, _ = invitation_create(
        organization=organization, email="eve@example.com", role=OWNER, actor=Access.for_user(root)
    )
    assert invitation_accept(invitation=first, user=UserFactory(email="bob@example.com"))
    root.is_active = False
    root.save()
    with pytest.raises(ValidationError) as excinfo:
        invitation_accept(invitation=second, user=UserFactory(email="eve@example.com"))
    assert excinfo.value.code == "inviter_lost_rights"


# --- invitation_revoke ------------------------------------------------------------------------


@pytest.mark.parametrize("role", [OWNER, ADMIN])
def test_a_manager_revokes_an_invitation_and_it_is_recorded(organization, invite, actor_of, role):
    invitation = invite("bob@example.com")
    actor = actor_of(role)
    revoked = invitation_revoke(invitation=invitation, actor=actor)
    assert revoked.revoked_at is not None
    assert Invitation.objects.get(pk=invitation.pk).revoked_at == revoked.revoked_at
    assert not pending_invitations(organization=organization).exists()
    event = AuditEvent.objects.get(action=AuditAction.INVITATION_REVOKED)
    assert (event.actor_user, event.organization) == (actor.user, organization)
    assert (event.target_id, event.target_label) == (str(invitation.pk), "bob@example.com")
    assert event.metadata == {"email": "bob@example.com", "role": MEMBER}


def test_revoking_twice_records_once(invite, owner):
    invitation = invite()
    first = invitation_revoke(invitation=invitation, actor=Access.for_user(owner))
    again = invitation_revoke(invitation=invitation, actor=Access.for_user(owner))
    assert again.revoked_at == first.revoked_at
    assert AuditEvent.objects.filter(action=AuditAction.INVITATION_REVOKED).count() == 1


def test_revoking_an_accepted_invitation_changes_nothing(invite, owner):
    invitation = invite("bob@example.com")
    membership = invitation_accept(invitation=invitation, user=UserFactory(email="bob@example.com"))
    before = snapshot()
    result = invitation_revoke(invitation=invitation, actor=Access.for_user(owner))
    assert result.revoked_at is None
    assert snapshot() == before
    assert Membership.objects.filter(pk=membership.pk).exists()


@pytest.mark.parametrize("role", [MEMBER, VIEWER])
def test_member_or_viewer_cannot_revoke(invite, actor_of, role):
    invitation = invite()
    actor = actor_of(role)
    before = snapshot()
    with pytest.raises(PermissionDenied):
        invitation_revoke(invitation=invitation, actor=actor)
    assert snapshot() == before


def test_admin_cannot_revoke_an_owner_invitation(invite, actor_of):
    invitation = invite(role=OWNER)
    admin = actor_of(ADMIN)
    before = snapshot()
    with pytest.raises(PermissionDenied):
        invitation_revoke(invitation=invitation, actor=admin)
    assert snapshot() == before


def test_owner_of_another_organization_cannot_revoke(invite, other_organization, actor_of):
    invitation = invite()
    outsider = actor_of(OWNER, org=other_organization)
    before = snapshot()
    with pytest.raises(PermissionDenied):
        invitation_revoke(invitation=invitation, actor=outsider)
    assert snapshot() == before


# --- pending_invitations and the model --------------------------------------------------------


def test_pending_invitations_lists_only_open_ones_of_the_organization_newest_first(
    organization, other_organization, owner, invite
):
    older = invite("a@example.com")
    newer = invite("b@example.com")
    Invitation.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(hours=1))
    _expire(invite("expired@example.com"))
    invitation_revoke(invitation=invite("revoked@example.com"), actor=Access.for_user(owner))
    used = invite("used@example.com")
    invitation_accept(invitation=used, user=UserFactory(email="used@example.com"))
    invite("a@example.com", by=None, org=other_organization)
    assert list(pending_invitations(organization=organization)) == [newer, older]


def test_is_pending_and_is_expired_follow_the_state(invite):
    invitation = invite()
    assert (invitation.is_pending, invitation.is_expired) == (True, False)
    invitation.expires_at = timezone.now() - timedelta(seconds=1)
    assert (invitation.is_pending, invitation.is_expired) == (False, True)
    invitation.expires_at = timezone.now() + timedelta(days=1)
    invitation.revoked_at = timezone.now()
    assert (invitation.is_pending, invitation.is_expired) == (False, False)
    invitation.revoked_at, invitation.accepted_at = None, timezone.now()
    assert invitation.is_pending is False


def test_deleting_the_organization_deletes_its_invitations(organization, invite):
    invite()
    organization.delete()
    assert not Invitation.objects.exists()
