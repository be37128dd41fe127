"""Fixes from the security review of the team pages, each shown failing without its fix."""

import json
import smtplib
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import RequestFactory

from accounts import throttle
from accounts.backends import find_user
from accounts.services import user_get_or_create
from audit.models import AuditEvent
from keyvault.models import ProviderKey
from organizations import roles
from organizations.models import Invitation, Membership
from tests.factories import PASSWORD, InvitationFactory, ProviderKeyFactory, UserFactory

pytestmark = pytest.mark.django_db

SERVICE_ACCOUNT = json.dumps(
    {
        "type": "service_account",
        "client_email": "svc@proj.iam.gserviceaccount.com",
        "private_key": "-----BEGIN PRIVATE KEY-----\nUNIQUEPRIVATEKEYMATERIAL1234567890\n-----END",
    }
)


@pytest.fixture
def signed_in(client, organization, member_of):
    def sign_in(role=roles.OWNER.id):
        user = member_of(organization, role).user
        client.force_login(user)
        return user

    return sign_in


# --- Secrets are never echoed ---------------------------------------------------------------


def test_service_account_json_is_not_rendered_back_when_the_add_form_has_errors(
    client, organization, signed_in
):
    signed_in()
    response = client.post(
        f"/o/{organization.slug}/keys/add/?provider=vertex",
        {"name": "vertex", "secret": SERVICE_ACCOUNT, "config_project": "my-project"},
    )
    assert response.status_code == 200  # the location is missing
    assert b"UNIQUEPRIVATEKEYMATERIAL" not in response.content
    assert not ProviderKey.objects.exists()


def test_service_account_json_is_not_rendered_back_when_the_rotate_form_has_errors(
    client, organization, signed_in
):
    owner = signed_in()
    key = ProviderKeyFactory(
        organization=organization,
        provider="vertex",
        secret=SERVICE_ACCOUNT,
        config={"project": "my-project", "location": "us-central1"},
        created_by=owner,
    )
    broken = SERVICE_ACCOUNT.replace('"type"', '"kind"')
    response = client.post(f"/o/{organization.slug}/keys/{key.pk}/rotate/", {"secret": broken})
    assert response.status_code == 200
    assert b"UNIQUEPRIVATEKEYMATERIAL" not in response.content
    key.refresh_from_db()
    assert key.version == 1


def test_a_search_holding_a_nul_byte_lists_every_key_instead_of_failing(
    client, organization, signed_in
):
    signed_in(roles.VIEWER.id)
    ProviderKeyFactory(organization=organization, name="prod")
    response = client.get(f"/o/{organization.slug}/keys/", {"q": "a\x00b"})
    assert response.status_code == 200
    assert b"prod" in response.content


# --- Signed-in pages are not cached ---------------------------------------------------------


def test_pages_for_a_signed_in_user_are_private_and_not_stored(client, organization, signed_in):
    signed_in()
    for path in (f"/o/{organization.slug}/keys/", f"/o/{organization.slug}/members/", "/orgs/"):
        cache_control = client.get(path)["Cache-Control"]
        assert "no-store" in cache_control and "private" in cache_control


def test_api_responses_without_a_session_are_left_alone(client, make_token):
    token = make_token("keys:read")
    response = client.get("/api/v1/ping", HTTP_AUTHORIZATION=f"Bearer {token.raw}")
    assert response.status_code == 200
    assert "private" not in response.get("Cache-Control", "")


# --- Sign-in ----------------------------------------------------------------------------------


def test_sign_in_matches_the_address_whatever_its_case(client):
    user = UserFactory(email="mixed@example.com", username="Mixed@Example.com")
    response = client.post(
        "/accounts/sign-in/",
        {"login": "MIXED@example.COM", "password": PASSWORD},
    )
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_an_ambiguous_case_insensitive_address_matches_nobody(db):
    UserFactory(email="a@example.com", username="Twin@example.com")
    UserFactory(email="b@example.com", username="twin@EXAMPLE.com")
    assert find_user("TWIN@example.com") is None
    assert find_user("Twin@example.com").email == "a@example.com"


def test_a_signed_in_user_sent_back_to_the_sign_in_page_is_not_stuck_in_a_loop(client, owner):
    client.force_login(owner)
    response = client.get("/accounts/sign-in/", {"next": "/accounts/sign-in/"})
    assert response.status_code == 302
    assert response["Location"] != "/accounts/sign-in/"


def test_an_account_created_twice_at_once_is_a_field_error_not_a_crash(db):
    user_get_or_create(email="race@example.com", password="a long enough passphrase")
    # The second writer passed its existence check before the first one committed.
    with (
        mock.patch("accounts.services.find_user", return_value=None),
        pytest.raises(ValidationError) as caught,
    ):
        user_get_or_create(email="race@example.com", password="a long enough passphrase")
    assert caught.value.message_dict == {
        "email": ["An account for race@example.com already exists."]
    }
    assert get_user_model().objects.filter(username="race@example.com").count() == 1


def _request(address):
    return RequestFactory().post("/accounts/sign-in/", REMOTE_ADDR=address)


def test_ipv6_guesses_from_one_network_share_one_counter(settings):
    settings.KEYVAULT_SIGNIN_FAILURES_PER_ACCOUNT = 3
    for host in range(3):
        throttle.record_failure(_request(f"2001:db8::{host + 1}"), "victim@example.com")
    assert throttle.is_throttled(_request("2001:db8::ff"), "victim@example.com")
    assert not throttle.is_throttled(_request("2001:db8:0:1::1"), "victim@example.com")


def test_without_a_client_address_only_the_account_pair_is_counted(settings):
    settings.KEYVAULT_SIGNIN_FAILURES_PER_ADDRESS = 2
    for name in ("a", "b", "c"):
        throttle.record_failure(_request(""), f"{name}@example.com")
    # One shared "unknown address" bucket would now lock out everybody.
    assert not throttle.is_throttled(_request(""), "someone@example.com")


def test_a_trusted_proxy_without_a_client_address_header_is_warned_about(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.KEYVAULT_CLIENT_IP_HEADER = ""
    with pytest.raises(SystemCheckError, match=r"keyvault\.W105"):
        call_command("check", "--fail-level", "WARNING")
    settings.KEYVAULT_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    call_command("check", "--fail-level", "WARNING")


# --- Invitations ------------------------------------------------------------------------------


def test_the_invitation_token_leaves_the_address_bar_at_once(client, organization):
    invitation = InvitationFactory(organization=organization, email="new@example.com")
    response = client.get(f"/invitations/{invitation.raw}/")
    assert response.status_code == 302
    assert response["Location"] == "/invitations/accept/"
    page = client.get("/invitations/accept/")
    assert page.status_code == 200
    assert invitation.raw not in page.content.decode()
    assert "new@example.com" in page.content.decode()


def test_the_accept_page_without_an_opened_link_says_to_open_it_again(client, db):
    response = client.get("/invitations/accept/")
    assert response.status_code == 404
    assert b"Open your invitation link again" in response.content


def test_an_existing_account_is_sent_to_sign_in_without_the_token_in_next(client, organization):
    UserFactory(email="known@example.com", username="Known@Example.com")
    invitation = InvitationFactory(organization=organization, email="known@example.com")
    page = client.get(f"/invitations/{invitation.raw}/", follow=True)
    html = page.content.decode()
    assert "/accounts/sign-in/?next=/invitations/accept/" in html
    assert invitation.raw not in html
    # The differently-cased account is found: no second account is offered.
    assert "password1" not in html


def test_an_invitation_email_that_cannot_be_sent_leaves_no_usable_invitation(
    client, organization, signed_in
):
    signed_in()
    with mock.patch(
        "organizations.invitation_mail.send_mail", side_effect=smtplib.SMTPException("down")
    ):
        response = client.post(
            f"/o/{organization.slug}/members/invite/", {"email": "x@example.com", "role": "member"}
        )
    assert response.status_code == 200
    assert b"could not be sent" in response.content
    invitation = Invitation.objects.get()
    assert invitation.revoked_at is not None and not invitation.is_pending
    revoked = AuditEvent.objects.get(action="invitation.revoked")
    assert revoked.metadata["reason"] == "email not sent"


def test_an_organization_sends_a_limited_number_of_invitations_a_day(
    client, organization, signed_in, settings
):
    settings.KEYVAULT_INVITATIONS_PER_DAY = 2
    signed_in()
    url = f"/o/{organization.slug}/members/invite/"
    for n in range(2):
        assert client.post(url, {"email": f"p{n}@example.com", "role": "member"}).status_code == 302
    refused = client.post(url, {"email": "p9@example.com", "role": "member"})
    assert refused.status_code == 200
    assert b"try again tomorrow" in refused.content
    assert Invitation.objects.count() == 2
    assert len(mail.outbox) == 2


def test_invitation_email_text_is_not_html_escaped(client, organization, signed_in):
    organization.name = 'Tom & Jerry "Ltd"'
    organization.save()
    signed_in()
    client.post(
        f"/o/{organization.slug}/members/invite/", {"email": "y@example.com", "role": "viewer"}
    )
    assert 'Tom & Jerry "Ltd"' in mail.outbox[0].body
    assert "&amp;" not in mail.outbox[0].body


def test_the_members_page_invites_and_the_link_joins_in_two_steps(client, organization, signed_in):
    signed_in()
    client.post(
        f"/o/{organization.slug}/members/invite/", {"email": "z@example.com", "role": "viewer"}
    )
    link = next(line for line in mail.outbox[0].body.splitlines() if "/invitations/" in line)
    client.logout()
    client.get(link.replace("http://testserver", ""))
    joined = client.post(
        "/invitations/accept/",
        {"password1": "a long enough passphrase", "password2": "a long enough passphrase"},
    )
    assert joined.status_code == 302
    assert Membership.objects.get(user__email="z@example.com").role == roles.VIEWER.id


# --- Audit details read as text ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "—"),
        (True, "yes"),
        (["keys:read", "keys:secret"], "keys:read, keys:secret"),
        ({"name": {"from": "old", "to": "new"}}, "name old → new"),
        ("2026-11-26T23:59:28.123456+00:00", "2026-11-26 23:59 UTC"),
        ("2026-not-a-date-T", "2026-not-a-date-T"),
        ("<b>", "<b>"),
    ],
)
def test_audit_values_are_shown_without_python_syntax(value, shown):
    from keyvault.templatetags.audit_display import audit_value

    assert audit_value(value) == shown


def test_audit_details_stay_escaped_on_the_page(client, organization, signed_in):
    signed_in()
    ProviderKeyFactory(organization=organization, name="<script>x</script>")
    html = client.get(f"/o/{organization.slug}/audit/").content.decode()
    assert "<script>x</script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html


def test_one_person_cannot_escape_the_daily_limit_by_opening_more_organizations(
    client, organization, other_organization, member_of, settings
):
    settings.KEYVAULT_INVITATIONS_PER_DAY = 2
    user = member_of(organization, roles.OWNER.id).user
    member_of(other_organization, roles.OWNER.id, user=user)
    client.force_login(user)
    for n, org in enumerate((organization, organization, other_organization)):
        client.post(
            f"/o/{org.slug}/members/invite/", {"email": f"q{n}@example.com", "role": "member"}
        )
    assert Invitation.objects.count() == 2


# --- Second review ----------------------------------------------------------------------------


def test_a_look_alike_address_is_not_the_same_account(db):
    real = UserFactory(email="sam@example.com", username="sam@example.com")
    # U+017F (long s) folds to "s" in PostgreSQL's case-insensitive comparison.
    look_alike = UserFactory(email="\u017fam@example.com", username="\u017fam@example.com")
    assert find_user("SAM@example.com") == real
    assert find_user("\u017fam@example.com") == look_alike
    real.delete()
    assert find_user("sam@example.com") is None


def test_adding_someone_by_email_never_picks_a_look_alike_account(db):
    UserFactory(email="\u017fam@example.com", username="\u017fam@example.com")
    user, created = user_get_or_create(email="sam@example.com")
    assert created and user.username == "sam@example.com"


def test_an_address_too_long_for_an_account_is_a_field_error(client, db):
    address = "a" * 140 + "@example.com"  # valid, but longer than a username may be
    response = client.post(
        "/accounts/sign-up/",
        {
            "email": address,
            "organization_name": "Long",
            "password1": "a long enough passphrase",
            "password2": "a long enough passphrase",
        },
    )
    assert response.status_code == 200
    assert b"at most 150 characters" in response.content or b"longer than 150" in response.content
    assert not get_user_model().objects.exists()


def test_the_session_remembers_which_invitation_was_opened_never_its_token(client, organization):
    invitation = InvitationFactory(organization=organization, email="s@example.com")
    client.get(f"/invitations/{invitation.raw}/")
    stored = client.session.load()
    assert invitation.raw not in repr(stored)
    assert stored["keyvault_invitation"]["id"] == str(invitation.pk)


def test_an_opened_invitation_is_forgotten_after_an_hour(client, organization):
    invitation = InvitationFactory(organization=organization, email="s@example.com")
    with mock.patch("organizations.web.invitations.time.time", return_value=1_000_000):
        client.get(f"/invitations/{invitation.raw}/")
    with mock.patch("organizations.web.invitations.time.time", return_value=1_000_000 + 3601):
        response = client.get("/invitations/accept/")
    assert response.status_code == 404


def test_leaving_twice_at_once_is_an_error_page_not_a_crash(client, organization, member_of):
    membership = member_of(organization, roles.MEMBER.id)
    client.force_login(membership.user)
    with mock.patch("organizations.web.context.membership_for_slug", return_value=membership):
        Membership.objects.filter(pk=membership.pk).delete()  # the other click won
        response = client.post(f"/o/{organization.slug}/settings/leave/")
    assert response.status_code == 400
    assert b"no longer a member" in response.content


def test_one_person_creates_a_limited_number_of_organizations_a_day(client, owner, settings):
    from organizations.models import Organization

    settings.KEYVAULT_ORGANIZATIONS_PER_DAY = 2
    client.force_login(owner)
    before = Organization.objects.count()
    for n in range(3):
        response = client.post("/orgs/new/", {"name": f"Side project {n}"})
    assert Organization.objects.count() == before + 2
    assert response.status_code == 200
    assert b"try again tomorrow" in response.content


def test_one_network_creates_a_limited_number_of_accounts_an_hour(client, db, settings):
    settings.KEYVAULT_SIGNUPS_PER_HOUR = 2
    for n in range(3):
        response = client.post(
            "/accounts/sign-up/",
            {
                "email": f"n{n}@example.com",
                "organization_name": f"Org {n}",
                "password1": "a long enough passphrase",
                "password2": "a long enough passphrase",
            },
            REMOTE_ADDR="2001:db8::" + str(n + 1),  # one /64
        )
        client.logout()
    assert get_user_model().objects.count() == 2
    assert b"try again in an hour" in response.content


def test_pages_and_the_admin_record_the_address_a_trusted_proxy_reports(
    client, organization, signed_in, settings
):
    from organizations.access import Access

    settings.KEYVAULT_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    user = signed_in()
    client.post(
        f"/o/{organization.slug}/keys/add/?provider=openai",
        {"name": "via proxy", "secret": "sk-proj-viaproxy1234567890", "enabled": "on"},
        HTTP_X_FORWARDED_FOR="198.51.100.7",
    )
    assert AuditEvent.objects.get(action="provider_key.created").ip_address == "198.51.100.7"
    # The admin builds its actor the same way.
    request = RequestFactory().post("/admin/", HTTP_X_FORWARDED_FOR="203.0.113.9")
    request.user = user
    assert Access.for_request(request).ip == "203.0.113.9"
