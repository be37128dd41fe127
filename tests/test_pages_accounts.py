"""Accounts and organizations through the pages: sign-up with the organization it starts,
sign-in (case-insensitive, throttled per address and account, the admin's door included),
sign-out, password change and reset, the home redirect, the org switcher, renaming and deleting."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from audit import AuditAction
from audit.models import AuditEvent
from keyvault.models import ProviderKey, ProxyToken
from organizations import roles
from organizations.models import Membership, Organization
from tests.factories import (
    PASSWORD,
    MembershipFactory,
    OrganizationFactory,
    ProviderKeyFactory,
    ProxyTokenFactory,
    UserFactory,
)
from tests.helpers import snapshot, text, url

pytestmark = pytest.mark.django_db

User = get_user_model()
NEW_PASSWORD = "another long passphrase 77"
SIGN_IN = reverse("accounts:sign_in")
SIGN_UP = reverse("accounts:sign_up")
THROTTLED = "Too many failed sign-ins"


def signed_in_user(client):
    """The user the client's session signs in, or None."""
    response = client.get(reverse("orgs:list"))
    return response.context["user"] if response.status_code == 200 else None


def _is_signed_in(client) -> bool:
    return signed_in_user(client) is not None


def sign_up(client, **fields):
    data = {
        "email": "founder@example.com",
        "organization_name": "Acme Corp",
        "password1": NEW_PASSWORD,
        "password2": NEW_PASSWORD,
        **fields,
    }
    return client.post(SIGN_UP, data)


CONFIRM_LINK = re.compile(r"https?://testserver(/accounts/confirm-email/\S+)")


def confirmation_link(message) -> str:
    [link] = CONFIRM_LINK.findall(message.body)
    return link


def confirm(client, link):
    """Open the mailed link and press Confirm, as its reader does."""
    page = client.get(link)
    assert page.status_code == 200
    assert "<h1>Confirm your address</h1>" in page.content.decode()
    return client.post(link)


def sign_up_and_confirm(client, mailoutbox, **fields):
    assert sign_up(client, **fields).status_code == 302
    return confirm(client, confirmation_link(mailoutbox[-1]))


# --- Sign-up ----------------------------------------------------------------------------------


def test_signing_up_creates_the_user_and_once_confirmed_an_organization_they_own(
    client, mailoutbox
):
    response = sign_up(client)

    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    user = User.objects.get(email="founder@example.com")
    assert user.username == "founder@example.com"
    assert user.check_password(NEW_PASSWORD)
    # Unconfirmed: not signed in, nothing owned.
    assert not _is_signed_in(client)
    assert not Organization.objects.exists()
    [message] = mailoutbox
    assert message.to == ["founder@example.com"]

    confirmed = confirm(client, confirmation_link(message))

    assert confirmed.status_code == 302
    organization = Organization.objects.get(slug="acme-corp")
    assert organization.name == "Acme Corp"
    assert Membership.objects.get(user=user).organization == organization
    assert Membership.objects.get(user=user).role == roles.OWNER.id
    page = client.get(confirmed["Location"], follow=True)
    assert page.redirect_chain[-1][0] == "/o/acme-corp/keys/"
    assert page.context["user"] == user  # signed in by the confirmation
    assert "Welcome to Keyvault. Acme Corp is ready for its first key." in page.content.decode()
    event = AuditEvent.objects.get(action=AuditAction.ORGANIZATION_CREATED)
    assert event.actor_user == user


def test_the_link_confirmed_in_another_browser_opens_the_organization_too(client, mailoutbox):
    sign_up(client)

    elsewhere = Client()
    confirm(elsewhere, confirmation_link(mailoutbox[0]))

    assert Organization.objects.get(slug="acme-corp").memberships.get().user.email == (
        "founder@example.com"
    )
    signed = elsewhere.post(SIGN_IN, {"login": "founder@example.com", "password": NEW_PASSWORD})
    assert signed.status_code == 302


def test_an_unconfirmed_account_cannot_sign_in(client, mailoutbox):
    sign_up(client)
    mailoutbox.clear()

    response = client.post(SIGN_IN, {"login": "founder@example.com", "password": NEW_PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert not _is_signed_in(client)
    assert not Organization.objects.exists()


def test_a_tampered_or_foreign_organization_in_the_link_opens_nothing(client, mailoutbox):
    sign_up(client)
    mine = confirmation_link(mailoutbox[-1])
    sign_up(Client(), email="other@example.com", organization_name="Theirs")
    theirs = confirmation_link(mailoutbox[-1])
    sign_up(Client(), email="third@example.com", organization_name="Third")
    third = confirmation_link(mailoutbox[-1])

    # Another account's signed name, and a forged one: the addresses are confirmed, no more.
    confirm(Client(), f"{mine.split('?')[0]}?{theirs.split('?')[1]}")
    confirm(Client(), f"{third.split('?')[0]}?organization=forged")

    assert not Organization.objects.exists()
    assert User.objects.get(email="founder@example.com").emailaddress_set.get().verified


def test_a_link_confirmed_twice_opens_one_organization(client, mailoutbox):
    sign_up(client)
    link = confirmation_link(mailoutbox[0])
    confirm(client, link)
    client.post(link)
    Client().post(link)

    assert Organization.objects.count() == 1


def test_the_slug_stays_unique_when_the_name_is_taken(client, mailoutbox):
    sign_up_and_confirm(client, mailoutbox, email="first@example.com", organization_name="Acme")
    sign_up_and_confirm(Client(), mailoutbox, email="second@example.com", organization_name="Acme")

    assert sorted(Organization.objects.values_list("slug", flat=True)) == ["acme", "acme-2"]
    assert Organization.objects.get(slug="acme-2").memberships.get().user.email == (
        "second@example.com"
    )


def test_an_email_with_an_account_cannot_sign_up_again(client):
    UserFactory(email="founder@example.com")
    before = snapshot()

    response = sign_up(client, email="Founder@Example.com")

    assert response.status_code == 200
    assert "An account with this email already exists" in " ".join(
        response.context["form"].errors["email"]
    )
    assert snapshot() == before


@pytest.mark.parametrize(
    ("password1", "password2", "field", "message"),
    [
        ("password", "password", "password1", "This password is too common."),
        ("12345678901", "12345678901", "password1", "This password is entirely numeric."),
        ("short", "short", "password1", "too short"),
        (NEW_PASSWORD, NEW_PASSWORD + "!", "password2", "The two passwords differ."),
    ],
    ids=["common", "numeric", "short", "mismatched"],
)
def test_a_weak_or_mismatched_password_creates_nothing(
    client, password1, password2, field, message
):
    before = snapshot()

    response = sign_up(client, password1=password1, password2=password2)

    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert snapshot() == before
    assert not _is_signed_in(client)
    assert password1 not in re.findall(r'value="([^"]*)"', response.content.decode())


def test_a_signed_in_user_is_sent_home_from_sign_up(owner, signed_in):
    response = signed_in(owner).get(SIGN_UP)

    assert response.status_code == 302
    assert response["Location"] == reverse("home")


# --- Sign-in ----------------------------------------------------------------------------------


def sign_in(client, username, password=PASSWORD, address="192.0.2.10", **extra):
    return client.post(
        SIGN_IN, {"login": username, "password": password, **extra}, REMOTE_ADDR=address
    )


@pytest.fixture
def casey(db):
    return UserFactory(email="casey@example.com")


def test_signing_in_by_email_ignores_its_case(client, casey):
    response = sign_in(client, "  Casey@EXAMPLE.com ")

    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    assert signed_in_user(client) == casey


def test_a_wrong_password_shows_an_error(client, casey):
    response = sign_in(client, "casey@example.com", "not the password")

    assert response.status_code == 200
    assert "That email and password do not match an account." in response.content.decode()
    assert not _is_signed_in(client)


def test_signing_in_follows_a_safe_next_and_ignores_another_site(client, casey):
    inside = sign_in(client, "casey@example.com", next="/orgs/new/")
    assert inside["Location"] == "/orgs/new/"
    client.post(reverse("accounts:sign_out"))

    outside = sign_in(client, "casey@example.com", next="https://evil.example/")
    assert outside["Location"] == reverse("home")


def test_sign_in_is_throttled_per_address_and_account_even_with_the_right_password(
    client, casey, settings
):
    limit = settings.KEYVAULT_SIGNIN_FAILURES_PER_ACCOUNT
    for _ in range(limit):
        assert sign_in(client, "casey@example.com", "wrong").status_code == 200

    response = sign_in(client, "CASEY@example.com")

    assert response.status_code == 429
    assert THROTTLED in response.content.decode()
    assert not _is_signed_in(client)
    # The same account from another address is not locked out by this one.
    elsewhere = Client()
    assert sign_in(elsewhere, "casey@example.com", address="192.0.2.99").status_code == 302


def test_one_failure_below_the_limit_still_lets_the_right_password_in(client, casey, settings):
    for _ in range(settings.KEYVAULT_SIGNIN_FAILURES_PER_ACCOUNT - 1):
        sign_in(client, "casey@example.com", "wrong")

    assert sign_in(client, "casey@example.com").status_code == 302


def test_a_successful_sign_in_clears_the_accounts_failures(client, casey, settings):
    below = settings.KEYVAULT_SIGNIN_FAILURES_PER_ACCOUNT - 1
    for _ in range(below):
        sign_in(client, "casey@example.com", "wrong")
    assert sign_in(client, "casey@example.com").status_code == 302
    client.post(reverse("accounts:sign_out"))

    for _ in range(below):
        assert sign_in(client, "casey@example.com", "wrong").status_code == 200
    assert sign_in(client, "casey@example.com").status_code == 302


@pytest.mark.parametrize(
    "incomplete",
    [{"password": ""}, {"password": None}],
    ids=["empty password", "no password field"],
)
def test_a_sign_in_without_a_password_does_not_clear_the_accounts_failures(
    client, casey, settings, incomplete
):
    """Only a right password clears the failures; a form that never checked one must not, or
    anyone could reset the per-account count between guesses."""
    limit = settings.KEYVAULT_SIGNIN_FAILURES_PER_ACCOUNT
    for _ in range(limit - 1):
        sign_in(client, "casey@example.com", "wrong")
    data = {"login": "casey@example.com", **incomplete}
    blank = client.post(
        SIGN_IN, {k: v for k, v in data.items() if v is not None}, REMOTE_ADDR="192.0.2.10"
    )
    assert blank.status_code == 200
    assert "password" in blank.context["form"].errors
    sign_in(client, "casey@example.com", "wrong")  # the limit-th failure

    response = sign_in(client, "casey@example.com")

    assert response.status_code == 429
    assert not _is_signed_in(client)


def test_another_account_from_the_same_address_works_until_the_address_limit(
    client, casey, settings
):
    settings.KEYVAULT_SIGNIN_FAILURES_PER_ACCOUNT = 3
    settings.KEYVAULT_SIGNIN_FAILURES_PER_ADDRESS = 5
    UserFactory(email="dana@example.com")
    for _ in range(3):
        sign_in(client, "casey@example.com", "wrong")
    assert sign_in(client, "casey@example.com").status_code == 429

    assert sign_in(Client(), "dana@example.com").status_code == 302
    sign_in(client, "dana@example.com", "wrong")
    assert sign_in(Client(), "dana@example.com").status_code == 302  # 4 failures from here
    sign_in(client, "nobody@example.com", "wrong")  # the fifth

    refused = sign_in(client, "dana@example.com")
    assert refused.status_code == 429
    assert THROTTLED in refused.content.decode()
    assert sign_in(Client(), "dana@example.com", address="192.0.2.99").status_code == 302
    assert signed_in_user(client) is None


def test_the_admin_has_no_password_form_of_its_own(client, owner):
    """The admin's door is the pages' sign-in: one set of rules (the throttle, two-factor,
    single sign-on), and no second place to guess passwords at."""
    page = client.get("/admin/login/?next=/admin/keyvault/")
    assert page.status_code == 302
    assert page["Location"] == f"{SIGN_IN}?next=/admin/keyvault/"

    posted = client.post(
        "/admin/login/", {"username": owner.email, "password": PASSWORD}, REMOTE_ADDR="192.0.2.10"
    )

    assert posted.status_code == 302
    assert posted["Location"].startswith(SIGN_IN)
    assert not _is_signed_in(client)


def test_the_admin_sign_in_is_the_throttled_sign_in(client, owner, settings):
    for _ in range(settings.KEYVAULT_SIGNIN_FAILURES_PER_ACCOUNT):
        sign_in(client, owner.email, "wrong", next="/admin/")

    refused = sign_in(client, owner.email, next="/admin/")

    assert refused.status_code == 429
    assert THROTTLED in refused.content.decode()
    assert client.get("/admin/")["Location"].startswith("/admin/login/")
    assert not _is_signed_in(client)


def test_a_signed_in_person_the_admin_does_not_admit_is_refused_not_asked_again(
    client, organization, member_of
):
    member = member_of(organization, roles.MEMBER.id).user
    assert sign_in(client, member.email, next="/admin/")["Location"] == "/admin/"

    assert client.get("/admin/")["Location"].startswith("/admin/login/")
    refused = client.get("/admin/login/?next=/admin/")
    assert refused.status_code == 403
    assert "not an owner or admin" in refused.content.decode()


# --- Sign-out and passwords ------------------------------------------------------------------


def test_signing_out_needs_a_post(owner, signed_in):
    client = signed_in(owner)

    assert client.get(reverse("accounts:sign_out")).status_code == 405
    assert _is_signed_in(client)
    response = client.post(reverse("accounts:sign_out"))

    assert response.status_code == 302
    assert response["Location"] == SIGN_IN
    assert not _is_signed_in(client)


def test_changing_the_password(owner, signed_in):
    client = signed_in(owner)
    change = reverse("accounts:password_change")
    assert client.get(change).status_code == 200

    wrong = client.post(
        change, {"oldpassword": "wrong", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    assert wrong.status_code == 200
    assert "oldpassword" in wrong.context["form"].errors
    response = client.post(
        change, {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )

    assert response.status_code == 302
    assert response["Location"] == change
    assert "Password successfully changed." in text(client.get(change))
    owner.refresh_from_db()
    assert owner.check_password(NEW_PASSWORD)
    assert _is_signed_in(client)  # the session survives its own password change


def test_resetting_the_password_by_email(client, casey, mailoutbox):
    response = client.post(reverse("accounts:password_reset"), {"email": "Casey@example.com"})

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:password_reset_done")
    [message] = mailoutbox
    assert message.to == ["casey@example.com"]
    [link] = re.findall(r"https?://testserver(/accounts/password/reset/key/\S+/)", message.body)
    form_page = client.get(link, follow=True)
    assert "<h1>Choose a new password</h1>" in form_page.content.decode()
    # The link's key moves into the session, out of the address the form posts to.
    set_password = form_page.redirect_chain[-1][0]
    assert link not in set_password
    done = client.post(set_password, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    assert done.status_code == 302
    assert done["Location"] == reverse("accounts:password_reset_complete")
    casey.refresh_from_db()
    assert casey.check_password(NEW_PASSWORD)
    assert "This link no longer works" in client.get(link, follow=True).content.decode()
    assert sign_in(Client(), "casey@example.com", NEW_PASSWORD).status_code == 302


def test_a_password_reset_for_an_unknown_address_looks_the_same_and_sends_nothing(
    client, mailoutbox
):
    response = client.post(reverse("accounts:password_reset"), {"email": "nobody@example.com"})

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:password_reset_done")
    assert not mailoutbox


# --- Home and the organization switcher ------------------------------------------------------


def test_home_shows_the_landing_page_when_signed_out(client):
    response = client.get(reverse("home"))

    assert response.status_code == 200
    assert f'href="{SIGN_IN}"' in response.content.decode()


def test_home_sends_a_member_of_one_organization_to_its_keys(organization, owner, signed_in):
    response = signed_in(owner).get(reverse("home"))

    assert response.status_code == 302
    assert response["Location"] == url("keys:list", organization)


def test_home_sends_a_member_of_several_organizations_to_the_last_used_one(
    organization, other_organization, owner, member_of, signed_in
):
    member_of(other_organization, roles.VIEWER.id, user=owner)
    client = signed_in(owner)

    assert client.get(reverse("home"))["Location"] == reverse("orgs:list")
    client.get(url("keys:list", other_organization))
    assert client.get(reverse("home"))["Location"] == url("keys:list", other_organization)
    client.get(url("keys:list", organization))
    assert client.get(reverse("home"))["Location"] == url("keys:list", organization)


def switcher(html: str) -> list[str]:
    menu = re.search(
        r'<ul class="menu-list" aria-label="Switch organization">(.*?)</ul>', html, re.S
    )
    return re.findall(r'<a href="/o/([^/]+)/keys/"', menu.group(1))


def test_the_switcher_and_the_list_show_only_the_users_organizations(
    organization, owner, member_of, signed_in
):
    mine = OrganizationFactory(name="Zeta Team", slug="zeta")
    member_of(mine, roles.VIEWER.id, user=owner)
    theirs = OrganizationFactory(name="Not Yours", slug="not-yours")
    MembershipFactory(organization=theirs, role=roles.OWNER.id)
    client = signed_in(owner)

    keys_page = client.get(url("keys:list", organization)).content.decode()
    listing = client.get(reverse("orgs:list")).content.decode()

    assert switcher(keys_page) == [organization.slug, "zeta"]
    assert switcher(listing) == [organization.slug, "zeta"]
    for html in (keys_page, listing):
        assert "Not Yours" not in html and "not-yours" not in html
    assert "Zeta Team" in listing and "Viewer" in listing


def test_creating_another_organization(owner, signed_in):
    client = signed_in(owner)

    response = client.post(reverse("orgs:create"), {"name": "Side Project", "slug": ""})
    taken = client.post(reverse("orgs:create"), {"name": "Again", "slug": "side-project"})

    assert response["Location"] == "/o/side-project/keys/"
    assert Membership.objects.get(organization__slug="side-project").user == owner
    assert taken.status_code == 200
    assert "already taken" in " ".join(taken.context["form"].errors["slug"])
    assert not Organization.objects.filter(name="Again").exists()


# --- Settings: rename and delete -------------------------------------------------------------


def test_an_owner_renames_the_organization(organization, owner, signed_in):
    client = signed_in(owner)

    response = client.post(url("settings:index", organization), {"name": "Acme Platform"})

    assert response.status_code == 302
    organization.refresh_from_db()
    assert organization.name == "Acme Platform"
    assert "Renamed the organization to Acme Platform." in text(client.get(response["Location"]))
    event = AuditEvent.objects.get(action=AuditAction.ORGANIZATION_RENAMED)
    assert (event.actor_user, event.metadata["to"]) == (owner, "Acme Platform")


def test_a_blank_name_is_refused_beside_the_field(organization, owner, signed_in):
    name = organization.name

    response = signed_in(owner).post(url("settings:index", organization), {"name": "   "})

    assert response.status_code == 200
    assert "name" in response.context["form"].errors
    organization.refresh_from_db()
    assert organization.name == name


@pytest.fixture
def stocked(organization):
    ProviderKeyFactory(organization=organization)
    ProviderKeyFactory(organization=organization)
    ProxyTokenFactory(organization=organization)
    return organization


@pytest.mark.parametrize("confirmation", ["", "wrong", "ORG", "Organization"])
def test_deleting_with_the_wrong_confirmation_keeps_the_organization(
    stocked, owner, signed_in, confirmation
):
    client = signed_in(owner)
    page = client.get(url("settings:delete", stocked)).content.decode()
    assert "This deletes its 2 provider keys" in page

    response = client.post(url("settings:delete", stocked), {"confirmation": confirmation})

    assert response.status_code == 200
    assert "confirmation" in response.context["form"].errors
    assert Organization.objects.filter(pk=stocked.pk).exists()
    assert ProviderKey.objects.filter(organization=stocked).count() == 2


def test_deleting_with_the_slug_typed_removes_it_with_its_keys(stocked, owner, signed_in):
    client = signed_in(owner)
    client.get(url("keys:list", stocked))  # remembered as the last organization

    response = client.post(url("settings:delete", stocked), {"confirmation": stocked.slug})

    assert response.status_code == 302
    assert response["Location"] == reverse("orgs:list")
    assert not Organization.objects.filter(pk=stocked.pk).exists()
    assert not ProviderKey.objects.exists()
    assert not ProxyToken.objects.exists()
    assert not Membership.objects.filter(user=owner).exists()
    assert f"Deleted {stocked.name}" in client.get(response["Location"]).content.decode()
    assert client.get(reverse("home"))["Location"] == reverse("orgs:list")
    assert AuditEvent.objects.filter(action=AuditAction.ORGANIZATION_DELETED).exists()
