"""A proven address before anything is owned or joined: unconfirmed accounts cannot create an
organization or be added to one, an invitation link proves the address it was mailed to, a new
address replaces the old one only once confirmed, and accounts older than the rule count as
confirmed."""

import re
from importlib import import_module

import pytest
from allauth.account.models import EmailAddress
from django.apps import apps as global_apps
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse

from accounts.services import email_verified
from organizations import invitations, roles, services
from organizations.access import Access
from organizations.models import Membership, Organization
from tests.factories import PASSWORD, InvitationFactory, UserFactory
from tests.helpers import snapshot

pytestmark = pytest.mark.django_db

CONFIRM_LINK = re.compile(r"https?://testserver(/accounts/confirm-email/\S+)")


@pytest.fixture
def unconfirmed(db):
    return UserFactory(email="unproven@example.com", verified=False)


def test_an_unconfirmed_account_cannot_create_an_organization(unconfirmed):
    before = snapshot()
    with pytest.raises(PermissionDenied, match="must confirm the address"):
        services.organization_create(
            name="Mine", slug="mine", owner=unconfirmed, actor=Access.for_user(unconfirmed)
        )
    assert snapshot() == before


def test_an_unconfirmed_account_signed_in_somehow_is_refused_on_the_page(unconfirmed):
    client = Client()
    client.force_login(unconfirmed)

    response = client.post(reverse("orgs:create"), {"name": "Mine", "slug": ""})

    assert response.status_code == 200
    assert "must confirm the address" in str(response.context["form"].non_field_errors())
    assert not Organization.objects.exists()


def test_an_unconfirmed_account_cannot_be_added_to_an_organization(
    organization, owner, unconfirmed
):
    with pytest.raises(PermissionDenied, match="must confirm the address"):
        services.membership_add(
            organization=organization,
            user=unconfirmed,
            role=roles.MEMBER.id,
            actor=Access.for_user(owner),
        )
    assert not Membership.objects.filter(user=unconfirmed).exists()


def test_the_operator_vouches_for_the_addresses_it_names(organization, unconfirmed):
    membership = services.membership_add(
        organization=organization,
        user=unconfirmed,
        role=roles.MEMBER.id,
        actor=Access.operator("manage.py add_member"),
    )
    assert membership.user == unconfirmed


def test_accepting_an_invitation_proves_the_address(organization, owner, unconfirmed):
    invitation = InvitationFactory(organization=organization, email=unconfirmed.email)

    invitations.invitation_accept(invitation=invitation, user=unconfirmed)

    assert email_verified(unconfirmed)
    assert Membership.objects.filter(user=unconfirmed, organization=organization).exists()


def test_a_refused_invitation_proves_nothing(organization, unconfirmed):
    invitation = InvitationFactory(organization=organization, email="someone.else@example.com")

    with pytest.raises(Exception, match="This invitation is for"):
        invitations.invitation_accept(invitation=invitation, user=unconfirmed)

    assert not email_verified(unconfirmed)


def test_signing_up_through_an_invitation_link_needs_no_other_confirmation(
    organization, owner, mailoutbox
):
    invitation = InvitationFactory(organization=organization, email="invited@example.com")
    client = Client()
    client.get(f"/invitations/{invitation.raw}/")

    joined = client.post(
        "/invitations/accept/",
        {"password1": "a long passphrase 99", "password2": "a long passphrase 99"},
    )

    assert joined.status_code == 302
    user = get_user_model().objects.get(email="invited@example.com")
    assert email_verified(user)
    again = Client().post(
        reverse("accounts:sign_in"),
        {"login": "invited@example.com", "password": "a long passphrase 99"},
    )
    assert again["Location"] == reverse("home")


def test_a_new_address_replaces_the_old_one_only_once_confirmed(mailoutbox):
    user = UserFactory(email="old@example.com")
    client = Client()
    client.force_login(user)

    asked = client.post(reverse("account_email"), {"action_add": "", "email": "New@Example.com"})

    assert asked.status_code == 302
    user.refresh_from_db()
    assert (user.email, user.username) == ("old@example.com", "old@example.com")
    [link] = CONFIRM_LINK.findall(mailoutbox[-1].body)
    assert mailoutbox[-1].to == ["new@example.com"]
    # Until then, the old address still signs in and the new one does not.
    assert (
        Client()
        .post(reverse("accounts:sign_in"), {"login": "new@example.com", "password": PASSWORD})
        .status_code
        == 200
    )

    client.get(link)
    client.post(link)

    user.refresh_from_db()
    assert (user.email, user.username) == ("new@example.com", "new@example.com")
    assert list(EmailAddress.objects.filter(user=user).values_list("email", "verified")) == [
        ("new@example.com", True)
    ]
    signed = Client().post(
        reverse("accounts:sign_in"), {"login": "new@example.com", "password": PASSWORD}
    )
    assert signed.status_code == 302


def test_accounts_older_than_confirmation_count_as_confirmed():
    migration = import_module("accounts.migrations.0001_existing_addresses_verified")
    old = get_user_model().objects.create_user(
        username="before@example.com", email="Before@Example.com", password=PASSWORD
    )
    blank = get_user_model().objects.create_user(username="nobody", email="", password=PASSWORD)

    migration.verify_existing(global_apps, None)

    assert email_verified(old)
    assert not EmailAddress.objects.filter(user=blank).exists()
    migration.verify_existing(global_apps, None)  # twice: nothing more
    assert EmailAddress.objects.filter(user=old).count() == 1
