"""Adding a member from the Django admin sends an invitation: nobody is attached to an
organization by their address, and the address's owner joins only by accepting the emailed
link. Sign-up does not verify addresses, so an account holding an address proves nothing."""

import re
import smtplib
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from audit import AuditAction
from audit.models import AuditEvent
from organizations import roles
from organizations.invitations import generate_invitation_token
from organizations.models import Invitation, Membership
from tests.factories import InvitationFactory, MembershipFactory, OrganizationFactory
from tests.helpers import messages_of, snapshot, stored_beside_pages

pytestmark = pytest.mark.django_db

MEMBERS = "/admin/organizations/membership/"
INVITATIONS = "/admin/organizations/invitation/"
LINK = re.compile(r"http://testserver(/invitations/(kvi_[A-Za-z0-9_-]{43})/)")
RESET_LINK = re.compile(r"https?://testserver(/accounts/password/reset/key/\S+/)")
PASSWORD = "a long enough passphrase"
NEW_PASSWORD = "the address owner's own passphrase"


@pytest.fixture
def a(tenants):
    return tenants.a


def sign_up(email, organization_name="Squatters", confirm=False):
    """Sign up through the page, as anyone may with any address; `(client, user)`. Only the
    address's owner can `confirm` it (and so sign in and own the organization)."""
    client = Client()
    response = client.post(
        "/accounts/sign-up/",
        {
            "email": email,
            "organization_name": organization_name,
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.status_code == 302
    if confirm:
        [link] = re.findall(
            r"https?://testserver(/accounts/confirm-email/\S+)", mail.outbox[-1].body
        )
        client.post(link)
    # The address's confirmation mail is not what these tests read.
    mail.outbox.clear()
    return client, get_user_model().objects.get(email=email)


# --- Taking over an organization through a pre-registered address ----------------------------


def test_an_address_someone_else_signed_up_with_gets_an_invitation_not_the_membership(
    a, signed_in, mailoutbox
):
    squatter_client, squatter = sign_up("colleague@example.com")
    admin = signed_in(a.admin)

    response = admin.post(
        f"{MEMBERS}add/",
        {"organization": str(a.org.pk), "email": "colleague@example.com", "role": "admin"},
    )

    assert response.status_code == 302
    assert not Membership.objects.filter(organization=a.org, user=squatter).exists()
    invitation = Invitation.objects.get(organization=a.org, email="colleague@example.com")
    assert (invitation.role, invitation.invited_by, invitation.is_pending) == (
        "admin",
        a.admin,
        True,
    )
    assert any("They join once they accept the link" in m for m in messages_of(admin))
    # The link goes to the mailbox and nowhere else: not a page, the admin history, a session,
    # a message or the audit trail.
    [message] = mailoutbox
    assert message.to == ["colleague@example.com"]
    [(_path, token)] = LINK.findall(message.body)
    assert token not in admin.get(response["Location"]).content.decode()
    assert token not in stored_beside_pages(admin)

    # Holding an account under the address opens nothing without the link.
    assert squatter_client.post("/invitations/accept/").status_code == 404
    assert squatter_client.get("/invitations/accept/").status_code == 404
    guessed = generate_invitation_token()
    assert squatter_client.get(f"/invitations/{guessed}/").status_code == 404
    # The squatter cannot confirm the address: signed in to nothing, owning nothing, kept out of
    # the admin.
    assert not Membership.objects.filter(user=squatter).exists()
    assert squatter_client.get(f"{INVITATIONS}{invitation.pk}/change/").status_code == 302
    assert Invitation.objects.get(pk=invitation.pk).is_pending
    assert not Membership.objects.filter(organization=a.org, user=squatter).exists()


def test_the_address_owner_takes_the_account_back_and_joins_with_the_link(a, signed_in, mailoutbox):
    squatter_client, squatter = sign_up("colleague@example.com")
    signed_in(a.admin).post(
        f"{MEMBERS}add/",
        {"organization": str(a.org.pk), "email": "colleague@example.com", "role": "member"},
    )
    [(link, _token)] = LINK.findall(mailoutbox[0].body)

    # Someone else signed in who is handed the link cannot use it: it names one address.
    forwarded = signed_in(a.viewer)
    forwarded.get(link)
    refused = forwarded.post("/invitations/accept/")
    assert "sign in with that address" in refused.content.decode()

    # The colleague reads the address's mail: a password reset gives them the account...
    colleague = Client()
    colleague.post(reverse("accounts:password_reset"), {"email": "colleague@example.com"})
    [reset] = RESET_LINK.findall(mailoutbox[-1].body)
    form_page = colleague.get(reset, follow=True)
    colleague.post(
        form_page.redirect_chain[-1][0],
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    signed = colleague.post(
        reverse("accounts:sign_in"),
        {"login": "colleague@example.com", "password": NEW_PASSWORD},
    )
    assert signed.status_code == 302
    # ...and the link lets them join.
    colleague.get(link)
    assert colleague.post("/invitations/accept/").status_code == 302

    assert Membership.objects.get(organization=a.org, user=squatter).role == "member"
    # The squatter never confirmed the address, so never had a session nor an organization.
    assert not Membership.objects.filter(user=squatter, role=roles.OWNER.id).exists()
    assert "_auth_user_id" not in squatter_client.session


def test_the_owner_of_a_fresh_organization_cannot_attach_an_existing_account(a, mailoutbox):
    # Names are not unique: the attacker's organization may be called like the victim's.
    attacker_client, attacker = sign_up(
        "mallory@example.com", organization_name="Alpha Org", confirm=True
    )
    attacker_org = Membership.objects.get(user=attacker).organization
    victim = a.owner
    victims_memberships = list(Membership.objects.filter(user=victim).values_list("pk", "role"))

    for url in (f"{MEMBERS}add/", f"{INVITATIONS}add/"):
        data = {"organization": str(attacker_org.pk), "email": victim.email, "role": "owner"}
        assert attacker_client.post(url, data).status_code == 302

    assert not Membership.objects.filter(organization=attacker_org, user=victim).exists()
    assert list(Membership.objects.filter(user=victim).values_list("pk", "role")) == (
        victims_memberships
    )
    # What the victim gets is an invitation to decline: the second replaced the first.
    [pending] = [i for i in Invitation.objects.filter(email=victim.email) if i.is_pending]
    assert (pending.organization, pending.invited_by) == (attacker_org, attacker)
    assert "mallory@example.com" in mailoutbox[-1].body
    assert "does not vouch" in mailoutbox[-1].body


def test_an_invitation_carries_no_account_and_creates_none(a, signed_in):
    users = get_user_model().objects.count()
    signed_in(a.owner).post(
        f"{MEMBERS}add/",
        {"organization": str(a.org.pk), "email": "nobody-yet@example.com", "role": "viewer"},
    )
    assert Invitation.objects.get(email="nobody-yet@example.com").is_pending
    assert get_user_model().objects.count() == users


# --- Refusals are form errors ------------------------------------------------------------------


@pytest.mark.parametrize("url", [f"{MEMBERS}add/", f"{INVITATIONS}add/"])
@pytest.mark.parametrize(
    ("case", "field", "expected"),
    [
        ("already-member", "email", "already a member"),
        ("bad-address", "email", "valid email address"),
        ("role-not-offered", "role", "Select a valid choice"),
        ("role-above-own-here", "__all__", "a role above your own"),
        ("pending-owner-invitation", "__all__", "a role above your own"),
        ("daily-limit", "__all__", "try again tomorrow"),
    ],
)
def test_refused_invitations_are_form_errors_and_write_nothing(
    a, signed_in, mailoutbox, settings, url, case, field, expected
):
    data = {"organization": str(a.org.pk), "email": "new@example.com", "role": "member"}
    if case == "already-member":
        data["email"] = a.member.email
    elif case == "bad-address":
        data["email"] = "not-an-address"
    elif case == "role-not-offered":
        data["role"] = "owner"
    elif case == "role-above-own-here":
        # Owner elsewhere, so "owner" is offered; the service judges A, where they are admin.
        MembershipFactory(organization=OrganizationFactory(), user=a.admin, role=roles.OWNER.id)
        data["role"] = "owner"
    elif case == "pending-owner-invitation":
        InvitationFactory(organization=a.org, email="new@example.com", role=roles.OWNER.id)
    elif case == "daily-limit":
        settings.KEYVAULT_INVITATIONS_PER_DAY = 1
        signed_in(a.admin).post(url, {**data, "email": "first@example.com"})
        mailoutbox.clear()
    admin = signed_in(a.admin)
    before = snapshot()

    response = admin.post(url, data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert expected in " ".join(errors.get(field, [])), errors
    assert snapshot() == before
    assert mailoutbox == []


def test_an_email_that_cannot_be_sent_withdraws_the_invitation(a, signed_in):
    admin = signed_in(a.admin)
    with mock.patch(
        "organizations.invitation_mail.send_mail", side_effect=smtplib.SMTPException("down")
    ):
        response = admin.post(
            f"{INVITATIONS}add/",
            {"organization": str(a.org.pk), "email": "new@example.com", "role": "member"},
        )

    assert response.status_code == 302
    invitation = Invitation.objects.get(email="new@example.com")
    assert invitation.revoked_at is not None
    revoked = AuditEvent.objects.get(action=AuditAction.INVITATION_REVOKED)
    assert revoked.metadata["reason"] == "email not sent"
    shown = messages_of(admin)
    assert any("could not be sent, so the invitation was withdrawn" in m for m in shown)
    assert not any("They join once" in m for m in shown)


# --- Listing and revoking ----------------------------------------------------------------------


def revoke(client, *invitations):
    return client.post(
        INVITATIONS,
        {
            "action": "revoke_invitations",
            "_selected_action": [str(i.pk) for i in invitations],
            "index": "0",
        },
    )


def listed(client, **filters):
    response = client.get(INVITATIONS, filters)
    assert response.status_code == 200
    return [i.email for i in response.context["cl"].result_list]


def test_pending_invitations_are_listed_and_revoked_with_the_action(a, signed_in):
    owner = signed_in(a.owner)
    assert listed(owner, status="pending") == [a.invitation.email]

    assert revoke(owner, a.invitation).status_code == 302

    assert Invitation.objects.get(pk=a.invitation.pk).revoked_at is not None
    assert listed(owner, status="pending") == []
    assert listed(owner, status="revoked") == [a.invitation.email]
    event = AuditEvent.objects.get(action=AuditAction.INVITATION_REVOKED)
    assert (event.actor_label, event.target_label) == (a.owner.email, a.invitation.email)


def test_an_admin_cannot_revoke_an_invitation_to_owner(a, signed_in):
    boss = InvitationFactory(organization=a.org, email="boss@example.com", role=roles.OWNER.id)
    admin = signed_in(a.admin)

    revoke(admin, boss, a.invitation)

    assert Invitation.objects.get(pk=boss.pk).is_pending
    assert Invitation.objects.get(pk=a.invitation.pk).revoked_at is not None
    assert any("boss@example.com" in m for m in messages_of(admin))


def test_a_sent_invitation_is_read_only_and_never_deleted(a, signed_in, superuser):
    url = f"{INVITATIONS}{a.invitation.pk}/"
    for client in (signed_in(a.owner), signed_in(superuser)):
        page = client.get(f"{url}change/")
        assert page.status_code == 200
        assert 'name="_save"' not in page.content.decode()
        assert client.post(f"{url}change/", {"role": "owner"}).status_code == 403
        assert client.post(f"{url}delete/", {"post": "yes"}).status_code == 403
    invitation = Invitation.objects.get(pk=a.invitation.pk)
    assert (invitation.role, invitation.is_pending) == ("member", True)
