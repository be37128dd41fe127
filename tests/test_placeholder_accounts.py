"""Repairing the accounts that the admin's old "add member" form and the commands made with an
unusable password: their owners could neither sign up (the address was taken) nor reset the
password (Django's reset skips unusable passwords). The data migration runs here as a
function, against accounts made the way the old code made them."""

import importlib
import re
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from organizations import roles, services
from organizations.access import Access
from organizations.models import Membership, Organization
from tests.factories import MembershipFactory, UserFactory
from tests.helpers import snapshot

pytestmark = pytest.mark.django_db

User = get_user_model()
PASSWORD = "the owner's own passphrase"
migration = importlib.import_module("organizations.migrations.0003_unlock_placeholder_accounts")


def repair():
    # The models as the migration saw them (AuditEvent was keyvault's then), on today's tables.
    state = MigrationLoader(connection).project_state(
        ("organizations", "0003_unlock_placeholder_accounts")
    )
    migration.unlock_placeholder_accounts(state.apps, None)


def placeholder(email, **fields):
    """An account as the old code made it for an address without one."""
    user = User(username=email, email=email, **fields)
    user.set_unusable_password()
    user.save()
    return user


def sign_up(email):
    """Sign up, and confirm the address from its mail when the page accepted it."""
    client = Client()
    response = client.post(
        reverse("accounts:sign_up"),
        {
            "email": email,
            "organization_name": "Mine",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    links = (
        re.findall(r"https?://testserver(/accounts/confirm-email/\S+)", mail.outbox[-1].body)
        if response.status_code == 302 and mail.outbox
        else []
    )
    for link in links:
        client.post(link)
    return response


def reset_and_sign_in(email, mailoutbox) -> bool:
    """Claim the account through the reset email, as the address's owner; signed in after?"""
    client = Client()
    client.post(reverse("accounts:password_reset"), {"email": email})
    if not mailoutbox:
        return False
    [link] = re.findall(
        r"https?://testserver(/accounts/password/reset/key/\S+/)", mailoutbox[-1].body
    )
    form_page = client.get(link, follow=True)
    client.post(form_page.redirect_chain[-1][0], {"password1": PASSWORD, "password2": PASSWORD})
    signed = client.post(reverse("accounts:sign_in"), {"login": email, "password": PASSWORD})
    return signed.status_code == 302 and "_auth_user_id" in client.session


def added_by(user_or_label, organization, user, role=roles.MEMBER.id):
    actor = (
        Access.operator(user_or_label)
        if isinstance(user_or_label, str)
        else Access.for_user(user_or_label)
    )
    # As the code of the time did: it asked for no confirmed address.
    with mock.patch("organizations.services.email_verified", return_value=True):
        return services.membership_add(organization=organization, user=user, role=role, actor=actor)


def test_an_address_added_from_the_admin_without_consent_can_sign_up_after_the_repair(
    organization, owner
):
    victim = placeholder("colleague@example.com")
    membership = added_by(owner, organization, victim, roles.ADMIN.id)
    refused = sign_up("colleague@example.com")
    assert "already exists" in refused.content.decode()  # locked out

    repair()

    assert not User.objects.filter(pk=victim.pk).exists()
    assert not Membership.objects.filter(pk=membership.pk).exists()
    removed = AuditEvent.objects.get(action="member.removed")
    assert (removed.organization, removed.actor_label, removed.target_id) == (
        organization,
        "manage.py migrate",
        str(membership.pk),
    )
    assert removed.metadata == {
        "user": "colleague@example.com",
        "role": "admin",
        "reason": migration.REASON,
    }
    # The address's owner signs up; nothing of the membership given without consent remains.
    assert sign_up("colleague@example.com").status_code == 302
    fresh = User.objects.get(email="colleague@example.com")
    assert [m.organization.name for m in fresh.memberships.all()] == ["Mine"]


def test_an_owner_the_operator_created_keeps_the_organization_and_can_reset(
    organization, owner, mailoutbox
):
    founder = placeholder("founder@example.com")
    founded = services.organization_create(
        name="Founded", slug="founded", owner=founder, actor=Access.operator("manage.py create_org")
    )
    elsewhere = added_by(owner, organization, founder)
    # (Django's own reset page skipped such accounts; allauth's mails them, so the repair below
    # is what matters for the rows it finds.)
    repair()

    founder.refresh_from_db()
    assert founder.has_usable_password()
    assert Membership.objects.get(user=founder, organization=founded).role == roles.OWNER.id
    # The membership a person added without asking is gone all the same.
    assert not Membership.objects.filter(pk=elsewhere.pk).exists()
    assert reset_and_sign_in("founder@example.com", mailoutbox)


def test_a_membership_add_member_vouched_for_is_kept_and_the_account_can_reset(
    organization, mailoutbox
):
    MembershipFactory(organization=organization, role=roles.OWNER.id)
    person = placeholder("ops-added@example.com")
    membership = added_by("manage.py add_member", organization, person)

    repair()

    assert Membership.objects.filter(pk=membership.pk).exists()
    assert reset_and_sign_in("ops-added@example.com", mailoutbox)
    assert not AuditEvent.objects.filter(action="member.removed").exists()


def test_an_organization_is_never_left_without_an_owner(mailoutbox):
    # No audit record says who made this owner; removing them would leave nobody in charge.
    organization = Organization.objects.create(name="Orphan?", slug="orphan")
    first = MembershipFactory(
        organization=organization, user=placeholder("first@example.com"), role=roles.OWNER.id
    )
    member = MembershipFactory(
        organization=organization, user=placeholder("member@example.com"), role=roles.MEMBER.id
    )

    repair()

    assert Membership.objects.filter(pk=first.pk).exists()
    assert not Membership.objects.filter(pk=member.pk).exists()
    assert not User.objects.filter(email="member@example.com").exists()
    assert reset_and_sign_in("first@example.com", mailoutbox)


def test_an_owner_added_by_another_owner_is_removed_like_any_member(organization, owner):
    added = added_by(owner, organization, placeholder("co-owner@example.com"), roles.OWNER.id)

    repair()

    assert not Membership.objects.filter(pk=added.pk).exists()
    assert list(
        Membership.objects.filter(organization=organization).values_list("user", flat=True)
    ) == [owner.pk]


def test_accounts_that_are_not_placeholders_are_left_alone(organization, owner):
    people = [
        placeholder("signed-in@example.com", last_login=timezone.now()),
        placeholder("root@example.com", is_superuser=True),
        placeholder("staff@example.com", is_staff=True),
        placeholder("deactivated@example.com", is_active=False),
        UserFactory(email="with-password@example.com"),
    ]
    for person in people:
        added_by(owner, organization, person)
    before = snapshot()

    repair()

    assert snapshot() == before


def test_the_repair_done_once_has_nothing_left_to_do(organization, owner):
    added_by(owner, organization, placeholder("a@example.com"))
    services.organization_create(
        name="B",
        slug="b",
        owner=placeholder("b@example.com"),
        actor=Access.operator("manage.py create_org"),
    )
    repair()
    before = snapshot()

    repair()

    assert snapshot() == before
    assert not migration.placeholders(User).exists()
