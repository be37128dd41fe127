"""Members and invitations through the pages: the emailed link is single-use, bound to its
address and expiring; roles change inline; members are removed after a confirmation; the last
owner can neither demote nor remove themself."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit import AuditAction
from audit.models import AuditEvent
from organizations import roles
from organizations.models import Invitation, Membership
from tests import matrix
from tests.factories import PASSWORD, InvitationFactory, ProviderKeyFactory, UserFactory
from tests.helpers import text, url

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a brand new passphrase 42"
INVITEE = "new.person@example.com"
LINK = re.compile(r"http://testserver(/invitations/kvi_[A-Za-z0-9_-]{43}/)")
SECRET = "sk-proj-MembersPageS3cretQwErTyUiOpAsDfGhJk7c1d"
User = get_user_model()


def invite(client, organization, email=INVITEE, role=roles.MEMBER.id):
    return client.post(url("members:invite", organization), {"email": email, "role": role})


def link_in(message) -> str:
    [path] = LINK.findall(message.body)
    return path


def membership(organization, email):
    return Membership.objects.filter(organization=organization, user__email=email).first()


# --- Inviting ---------------------------------------------------------------------------------


def test_inviting_sends_one_email_whose_link_is_pending_on_the_members_page(
    organization, owner, owner_client, mailoutbox
):
    response = invite(owner_client, organization, email="New.Person@Example.com")

    assert response.status_code == 302
    assert response["Location"] == url("members:list", organization)
    assert len(mailoutbox) == 1
    [message] = mailoutbox
    assert message.to == [INVITEE]
    assert organization.name in message.subject
    assert owner.email in message.body
    path = link_in(message)
    invitation = Invitation.objects.get(organization=organization)
    assert invitation.email == INVITEE
    assert invitation.invited_by == owner
    assert path.split("/")[2] not in str(invitation.__dict__)  # only a digest is stored
    page = owner_client.get(response["Location"])
    html = text(page)
    assert f"Invited {INVITEE} as member." in html
    assert INVITEE in html and "Pending invitations" in html
    assert path not in html


def test_an_invitation_form_error_shows_on_its_field_and_sends_nothing(
    organization, owner_client, mailoutbox
):
    response = invite(owner_client, organization, email="not-an-address")

    assert response.status_code == 200
    assert "email" in response.context["form"].errors
    assert not mailoutbox
    assert not Invitation.objects.exists()


def test_an_admin_cannot_invite_an_owner_through_the_form(
    organization, member_of, signed_in, mailoutbox
):
    admin = signed_in(member_of(organization, roles.ADMIN.id).user)

    form_page = admin.get(url("members:invite", organization))
    offered = re.findall(r'<option value="([a-z]+)"', form_page.content.decode())
    response = invite(admin, organization, role=roles.OWNER.id)

    assert roles.OWNER.id not in offered and roles.ADMIN.id in offered
    assert response.status_code == 200
    assert "role" in response.context["form"].errors
    assert not mailoutbox
    assert not Invitation.objects.exists()


def test_reinviting_replaces_the_first_link(organization, owner_client, mailoutbox):
    invite(owner_client, organization)
    invite(owner_client, organization, role=roles.VIEWER.id)
    first, second = (link_in(message) for message in mailoutbox)

    assert first != second
    refused, _ = open_link(Client(), first)
    assert refused.status_code == 410
    assert "withdrawn" in refused.content.decode()
    assert open_link(Client(), second)[0].status_code == 200
    assert (
        Invitation.objects.filter(organization=organization, revoked_at__isnull=True).count() == 1
    )


# --- Accepting: a new account ----------------------------------------------------------------


def open_link(client, link):
    """Open an emailed link as a browser does, following redirects: `(response, page)`, where
    `page` is the address the invitation's form answers at (the link or where it led)."""
    response = client.get(link, follow=True)
    page = response.redirect_chain[-1][0] if response.redirect_chain else link
    return response, page


def test_an_invitee_without_an_account_signs_up_through_the_link_and_sees_keys_masked(
    organization, owner_client, mailoutbox, client
):
    ProviderKeyFactory(organization=organization, name="Prod", secret=SECRET)
    invite(owner_client, organization)

    opened, page = open_link(client, link_in(mailoutbox[0]))
    assert opened.status_code == 200
    html = opened.content.decode()
    assert f'value="{INVITEE}" readonly' in html
    assert 'name="password1"' in html and 'name="password2"' in html
    response = client.post(page, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == url("keys:list", organization)
    user = User.objects.get(email=INVITEE)
    assert user.check_password(NEW_PASSWORD)
    assert membership(organization, INVITEE).role == roles.MEMBER.id
    keys = client.get(response["Location"])
    assert keys.status_code == 200  # signed in
    assert keys.context["user"] == user
    html = keys.content.decode()
    assert f"You joined {organization.name} as member." in html
    assert "sk-proj-…7c1d" in html
    assert SECRET not in html and SECRET[8:-4] not in html
    assert AuditEvent.objects.filter(action=AuditAction.INVITATION_ACCEPTED).count() == 1


def test_a_link_used_for_signing_up_is_refused_afterwards(
    organization, owner_client, mailoutbox, client
):
    invite(owner_client, organization)
    link = link_in(mailoutbox[0])
    _, page = open_link(client, link)
    client.post(page, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    again, _ = open_link(client, link)
    assert again.status_code == 410
    assert "already used" in again.content.decode()
    # Posting to the form again joins nobody twice.
    assert client.post(page).status_code in (404, 410)
    stranger = Client()
    refused, stranger_page = open_link(stranger, link)
    assert refused.status_code == 410
    signing_up = stranger.post(
        stranger_page, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    assert signing_up.status_code == 410
    assert Membership.objects.filter(organization=organization, user__email=INVITEE).count() == 1
    assert User.objects.filter(email=INVITEE).count() == 1


@pytest.mark.parametrize(
    ("password2", "error"),
    [("something else entirely 9", "The two passwords differ."), (None, None)],
    ids=["mismatched", "weak"],
)
def test_a_refused_sign_up_through_a_link_creates_nothing_and_keeps_the_link(
    organization, owner_client, mailoutbox, client, password2, error
):
    invite(owner_client, organization)
    _, page = open_link(client, link_in(mailoutbox[0]))
    password1 = NEW_PASSWORD if password2 else "password"
    users = User.objects.count()

    response = client.post(page, {"password1": password1, "password2": password2 or password1})

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert ("password2" if password2 else "password1") in errors
    if error:
        assert error in errors["password2"]
    assert User.objects.count() == users
    assert membership(organization, INVITEE) is None
    assert Invitation.objects.get(organization=organization).is_pending


# --- Accepting: an existing account ----------------------------------------------------------


def test_an_invitee_with_an_account_signs_in_first_then_joins(
    organization, owner_client, mailoutbox, client
):
    UserFactory(email=INVITEE)
    invite(owner_client, organization, role=roles.ADMIN.id)
    link = link_in(mailoutbox[0])

    opened, page = open_link(client, link)
    assert opened.status_code == 200
    html = opened.content.decode()
    sign_in = f"{reverse('accounts:sign_in')}?next={page}"
    assert f'href="{sign_in}"' in html
    assert 'name="password1"' not in html
    # Signed out, posting to the page creates nothing.
    assert client.post(page, {"password1": "x", "password2": "x"}).status_code == 200
    assert membership(organization, INVITEE) is None

    signed = client.post(sign_in, {"login": INVITEE, "password": PASSWORD, "next": page})
    assert signed.status_code == 302
    assert signed["Location"] == page
    join_page = client.get(page)
    assert f"Join {organization.name}" in join_page.content.decode()
    assert membership(organization, INVITEE) is None  # a GET does not join
    joined = client.post(page)

    assert joined.status_code == 302
    assert joined["Location"] == url("keys:list", organization)
    assert membership(organization, INVITEE).role == roles.ADMIN.id
    assert open_link(client, link)[0].status_code == 410
    assert client.post(page).status_code in (404, 410)
    assert Membership.objects.filter(organization=organization, user__email=INVITEE).count() == 1


def test_someone_signed_in_with_another_address_cannot_accept(
    organization, owner_client, mailoutbox, signed_in
):
    invite(owner_client, organization)
    other = UserFactory(email="someone.else@example.com")
    client = signed_in(other)

    opened, page = open_link(client, link_in(mailoutbox[0]))
    assert opened.status_code == 200
    assert "but this invitation is for" in opened.content.decode()
    response = client.post(page)

    assert response.status_code == 200
    assert f"This invitation is for {INVITEE}" in text(response)
    assert not Membership.objects.filter(organization=organization, user=other).exists()
    assert Invitation.objects.get(organization=organization).is_pending


# --- Closed and unknown links ----------------------------------------------------------------


@pytest.fixture
def invitation(organization, owner):
    return InvitationFactory(organization=organization, email=INVITEE, invited_by=owner)


def link_of(invitation) -> str:
    return f"/invitations/{invitation.raw}/"


def test_an_expired_link_answers_410_and_joins_nobody(invitation, client, signed_in):
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    users = User.objects.count()

    opened, page = open_link(client, link_of(invitation))
    signing_up = client.post(page, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    existing = signed_in(UserFactory(email=INVITEE))
    _, existing_page = open_link(existing, link_of(invitation))
    joining = existing.post(existing_page)

    assert opened.status_code == signing_up.status_code == joining.status_code == 410
    assert "expired" in opened.content.decode()
    assert User.objects.count() == users + 1  # only the one this test made
    assert membership(invitation.organization, INVITEE) is None


def test_a_revoked_link_answers_410(organization, owner_client, invitation, client):
    response = owner_client.post(url("members:invitation_revoke", organization, pk=invitation.pk))
    assert response.status_code == 302

    opened, page = open_link(client, link_of(invitation))
    signing_up = client.post(page, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    assert opened.status_code == signing_up.status_code == 410
    assert "withdrawn" in opened.content.decode()
    assert not User.objects.filter(email=INVITEE).exists()
    html = owner_client.get(url("members:list", organization)).content.decode()
    assert f"Revoked the invitation of {INVITEE}." in html
    assert "No pending invitations." in html


def test_a_link_revoked_after_it_was_opened_is_refused(
    organization, owner_client, invitation, client
):
    _, page = open_link(client, link_of(invitation))
    owner_client.post(url("members:invitation_revoke", organization, pk=invitation.pk))

    response = client.post(page, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    assert response.status_code == 410
    assert not User.objects.filter(email=INVITEE).exists()


@pytest.mark.parametrize(
    "token",
    ["kvi_" + "A" * 43, "kvi_short", "nonsense", "kvp_" + "A" * 43, "kvi_" + "A" * 44],
)
def test_an_unknown_or_malformed_link_answers_404(invitation, client, token):
    response, _ = open_link(client, f"/invitations/{token}/")

    assert response.status_code == 404
    assert "not valid" in response.content.decode()
    assert client.post(f"/invitations/{token}/").status_code in (404, 405)
    assert Membership.objects.filter(organization=invitation.organization).count() == 1


# --- Roles and removal ------------------------------------------------------------------------


def test_changing_a_role_through_the_inline_form(organization, member_of, owner_client):
    target = member_of(organization, roles.VIEWER.id)
    page = owner_client.get(url("members:list", organization)).content.decode()
    assert f'name="m{target.pk}-role"' in page

    response = owner_client.post(
        url("members:change_role", organization, pk=target.pk), {f"m{target.pk}-role": "admin"}
    )

    assert response.status_code == 302
    assert response["Location"] == url("members:list", organization)
    target.refresh_from_db()
    assert target.role == roles.ADMIN.id
    html = owner_client.get(response["Location"]).content.decode()
    assert f"{target.user.email} is now admin." in html
    event = AuditEvent.objects.get(action=AuditAction.MEMBER_ROLE_CHANGED)
    assert event.metadata == {"user": target.user.email, "from": "viewer", "to": "admin"}


def test_changing_a_role_needs_post(organization, member_of, owner_client):
    target = member_of(organization, roles.VIEWER.id)

    response = owner_client.get(url("members:change_role", organization, pk=target.pk))

    assert response.status_code == 405


def test_removing_a_member_after_the_confirmation_page(organization, member_of, owner_client):
    target = member_of(organization, roles.MEMBER.id)
    remove = url("members:remove", organization, pk=target.pk)

    confirm = owner_client.get(remove)
    assert confirm.status_code == 200
    assert f"Remove {target.user.email}?" in confirm.content.decode()
    assert Membership.objects.filter(pk=target.pk).exists()
    response = owner_client.post(remove)

    assert response.status_code == 302
    assert response["Location"] == url("members:list", organization)
    assert not Membership.objects.filter(pk=target.pk).exists()
    html = owner_client.get(response["Location"]).content.decode()
    assert f"Removed {target.user.email} from {organization.name}." in html


def own_membership(organization, user):
    return Membership.objects.get(organization=organization, user=user)


def test_the_only_owner_cannot_demote_themself(organization, owner, owner_client):
    mine = own_membership(organization, owner)
    events = AuditEvent.objects.count()

    response = owner_client.post(
        url("members:change_role", organization, pk=mine.pk), {f"m{mine.pk}-role": "admin"}
    )

    assert response.status_code == 302
    html = owner_client.get(response["Location"]).content.decode()
    assert "An organization must keep at least one owner" in html
    assert 'class="message error"' in html
    assert own_membership(organization, owner).role == roles.OWNER.id
    assert AuditEvent.objects.count() == events


def test_the_only_owner_cannot_remove_themself(organization, owner, owner_client):
    mine = own_membership(organization, owner)
    events = AuditEvent.objects.count()
    remove = url("members:remove", organization, pk=mine.pk)
    assert f"Leave {organization.name}?" in owner_client.get(remove).content.decode()

    response = owner_client.post(remove)

    assert response.status_code == 400
    assert "An organization must keep at least one owner" in response.content.decode()
    assert own_membership(organization, owner).role == roles.OWNER.id
    assert AuditEvent.objects.count() == events


def test_an_owner_leaving_while_another_owner_stays_goes_home(
    organization, owner, owner_client, member_of
):
    member_of(organization, roles.OWNER.id)
    mine = own_membership(organization, owner)

    response = owner_client.post(url("members:remove", organization, pk=mine.pk))

    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    assert not Membership.objects.filter(pk=mine.pk).exists()
    home = owner_client.get(response["Location"])
    assert home.status_code == 302 and home["Location"] == reverse("orgs:list")
    assert f"You left {organization.name}." in owner_client.get(home["Location"]).content.decode()
    assert owner_client.get(url("keys:list", organization)).status_code == 404


def test_an_owner_with_a_second_owner_can_demote_themself(
    organization, owner, owner_client, member_of
):
    member_of(organization, roles.OWNER.id)
    mine = own_membership(organization, owner)

    owner_client.post(
        url("members:change_role", organization, pk=mine.pk), {f"m{mine.pk}-role": "viewer"}
    )

    assert own_membership(organization, owner).role == roles.VIEWER.id


# --- Leaving on one's own ---------------------------------------------------------------------


@pytest.mark.parametrize("role", matrix.in_order(matrix.EVERYONE - {matrix.OWNER}))
def test_any_role_can_leave_on_its_own(client, organization, owner, member_of, role):
    user = member_of(organization, role).user
    client.force_login(user)
    assert client.get(f"/o/{organization.slug}/settings/leave/").status_code == 200
    response = client.post(f"/o/{organization.slug}/settings/leave/")
    assert response.status_code == 302
    assert not Membership.objects.filter(user=user, organization=organization).exists()
    event = AuditEvent.objects.get(action="member.left")
    assert event.actor_user == user and event.metadata == {"user": user.email, "role": role}
    assert client.get(f"/o/{organization.slug}/keys/").status_code == 404


def test_the_last_owner_cannot_leave(client, organization, owner):
    client.force_login(owner)
    response = client.post(f"/o/{organization.slug}/settings/leave/")
    assert response.status_code == 400
    assert b"at least one owner" in response.content
    assert Membership.objects.filter(user=owner, organization=organization).exists()
    assert not AuditEvent.objects.filter(action="member.left").exists()


def test_the_last_owner_is_offered_neither_leave_nor_a_role_change(
    organization, owner, owner_client, member_of
):
    member_of(organization, roles.MEMBER.id)
    mine = own_membership(organization, owner)

    members = owner_client.get(url("members:list", organization)).content.decode()
    settings = owner_client.get(url("settings:index", organization)).content.decode()

    assert url("members:remove", organization, pk=mine.pk) not in members
    assert f'name="m{mine.pk}-role"' not in members
    assert "(only owner)" in members
    assert url("settings:leave", organization) not in settings
    assert "You are the only owner" in settings


def test_with_a_second_owner_both_are_offered_leave_and_a_role_change(
    organization, owner, owner_client, member_of
):
    member_of(organization, roles.OWNER.id)
    mine = own_membership(organization, owner)

    members = owner_client.get(url("members:list", organization)).content.decode()
    settings = owner_client.get(url("settings:index", organization)).content.decode()

    assert url("members:remove", organization, pk=mine.pk) in members
    assert f'name="m{mine.pk}-role"' in members
    assert url("settings:leave", organization) in settings


def test_an_owner_can_leave_when_another_owner_stays(client, organization, owner, member_of):
    member_of(organization, roles.OWNER.id)
    client.force_login(owner)
    assert client.post(f"/o/{organization.slug}/settings/leave/").status_code == 302
    assert not Membership.objects.filter(user=owner, organization=organization).exists()


def test_nobody_leaves_on_someone_elses_behalf(organization, owner, member_of):
    from django.core.exceptions import PermissionDenied

    from organizations.access import Access
    from organizations.services import membership_leave

    other = member_of(organization, roles.MEMBER.id)
    with pytest.raises(PermissionDenied):
        membership_leave(membership=other, actor=Access.for_user(owner))
    assert Membership.objects.filter(pk=other.pk).exists()
