"""Two-factor sign-in with an authenticator app (TOTP) and recovery codes, through the pages:
set up with a generated code, asked for at every sign-in (the admin's too, which is the same
page), wrong and replayed codes refused, recovery codes single-use, and every new or removed
factor recorded in the audit trail and mailed to the account."""

import pyotp
import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from django.test import Client
from django.urls import reverse

from audit import AuditAction
from audit.models import AuditEvent
from organizations import roles
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

SIGN_IN = reverse("accounts:sign_in")
STAGE = reverse("mfa_authenticate")


def sign_in(client, user, next_url=None):
    data = {"login": user.email, "password": PASSWORD}
    path = f"{SIGN_IN}?next={next_url}" if next_url else SIGN_IN
    return client.post(path, data)


def reauthenticate(client):
    """Changing a factor asks for the password again (allauth's reauthentication)."""
    assert client.post(reverse("account_reauthenticate"), {"password": PASSWORD}).status_code == 302


def is_signed_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def person(db):
    user = UserFactory(email="careful@example.com")
    MembershipFactory(user=user, organization=OrganizationFactory(), role=roles.OWNER.id)
    return user


def set_up_totp(user) -> pyotp.TOTP:
    """Turn the app on from the account page, as its owner does; the app's generator."""
    client = Client()
    assert sign_in(client, user).status_code == 302
    reauthenticate(client)
    page = client.get(reverse("mfa_activate_totp"))
    assert page.status_code == 200
    totp = pyotp.TOTP(page.context["form"].secret)
    done = client.post(reverse("mfa_activate_totp"), {"code": totp.now()})
    assert done.status_code == 302
    return totp


@pytest.fixture
def with_totp(person, mailoutbox):
    totp = set_up_totp(person)
    mailoutbox.clear()
    return totp


@pytest.mark.django_db(transaction=True)
def test_setting_up_the_app_is_audited_and_mailed(person, mailoutbox):
    # allauth records and mails a new factor once its transaction has committed, within the
    # request: a test transaction around it would hold that back.
    set_up_totp(person)

    assert Authenticator.objects.filter(user=person, type=Authenticator.Type.TOTP).exists()
    assert Authenticator.objects.filter(
        user=person, type=Authenticator.Type.RECOVERY_CODES
    ).exists()
    event = AuditEvent.objects.get(
        action=AuditAction.TWO_FACTOR_ADDED, metadata__type=Authenticator.Type.TOTP
    )
    assert (event.actor_user, event.organization) == (person, None)
    assert any(m.to == [person.email] and "authenticator" in m.subject.lower() for m in mailoutbox)


def test_a_wrong_code_refuses_the_setup(person):
    client = Client()
    sign_in(client, person)
    reauthenticate(client)
    client.get(reverse("mfa_activate_totp"))

    response = client.post(reverse("mfa_activate_totp"), {"code": "000000"})

    assert response.status_code == 200
    assert response.context["form"].errors
    assert not Authenticator.objects.filter(user=person).exists()


def test_signing_in_asks_for_the_code_and_refuses_a_wrong_one(person, with_totp):
    client = Client()
    response = sign_in(client, person)

    assert response.status_code == 302
    assert response["Location"] == STAGE
    assert not is_signed_in(client)  # the password alone opened nothing
    assert client.get(reverse("orgs:list")).status_code == 302
    wrong = client.post(STAGE, {"code": "123456" if with_totp.now() != "123456" else "654321"})
    assert wrong.status_code == 200
    assert not is_signed_in(client)

    right = client.post(STAGE, {"code": with_totp.now()})

    assert right.status_code == 302
    assert is_signed_in(client)


def test_a_code_used_once_is_refused_the_second_time(person, with_totp):
    first = Client()
    sign_in(first, person)
    code = with_totp.now()
    assert first.post(STAGE, {"code": code}).status_code == 302

    second = Client()
    sign_in(second, person)
    replayed = second.post(STAGE, {"code": code})

    assert replayed.status_code == 200
    assert not is_signed_in(second)


def test_a_recovery_code_works_once(person, with_totp):
    codes = RecoveryCodes(
        Authenticator.objects.get(user=person, type=Authenticator.Type.RECOVERY_CODES)
    ).get_unused_codes()
    assert len(codes) == 10

    first = Client()
    sign_in(first, person)
    assert first.post(STAGE, {"code": codes[0]}).status_code == 302
    assert is_signed_in(first)

    again = Client()
    sign_in(again, person)
    assert again.post(STAGE, {"code": codes[0]}).status_code == 200
    assert not is_signed_in(again)
    left = RecoveryCodes(
        Authenticator.objects.get(user=person, type=Authenticator.Type.RECOVERY_CODES)
    ).get_unused_codes()
    assert codes[0] not in left and len(left) == 9


def test_the_admin_asks_for_the_second_factor_too(person, with_totp):
    client = Client()
    response = sign_in(client, person, next_url="/admin/")

    assert response["Location"] == STAGE
    assert client.get("/admin/")["Location"].startswith("/admin/login/")
    entered = client.post(STAGE, {"code": with_totp.now()})

    assert entered["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_removing_the_app_is_audited_and_mailed(person, with_totp, mailoutbox):
    client = Client()
    sign_in(client, person)
    client.post(STAGE, {"code": with_totp.now()})
    reauthenticate(client)

    response = client.post(reverse("mfa_deactivate_totp"))

    assert response.status_code == 302
    assert not Authenticator.objects.filter(user=person, type=Authenticator.Type.TOTP).exists()
    assert AuditEvent.objects.filter(action=AuditAction.TWO_FACTOR_REMOVED).exists()
    assert any(m.to == [person.email] for m in mailoutbox)
    # A password alone signs in again.
    assert is_signed_in(_signed(person))


def _signed(user):
    client = Client()
    sign_in(client, user)
    return client


def test_the_two_factor_pages_carry_no_inline_code(person, with_totp):
    client = Client()
    sign_in(client, person)
    stage = client.get(STAGE).content.decode()
    client.post(STAGE, {"code": with_totp.now()})
    reauthenticate(client)
    pages = [stage] + [
        client.get(reverse(name)).content.decode()
        for name in ("mfa_index", "mfa_view_recovery_codes", "mfa_generate_recovery_codes")
    ]
    for html in pages:
        assert "<script>" not in html and " style=" not in html and "<style" not in html


def test_wrong_codes_are_throttled_and_the_right_one_then_refused(person, with_totp, settings):
    settings.KEYVAULT_SIGNIN_FAILURES_PER_ACCOUNT = 3
    client = Client()
    sign_in(client, person)
    wrong = "123456" if with_totp.now() != "123456" else "654321"
    for _ in range(3):
        assert "Incorrect code" in client.post(STAGE, {"code": wrong}).content.decode()

    refused = client.post(STAGE, {"code": with_totp.now()})

    assert "Too many wrong codes" in refused.content.decode()
    assert not is_signed_in(client)


@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_codes_get_no_more_checks_than_the_limit(postgresql_only, person, settings):
    from unittest import mock

    from allauth.mfa.totp.internal.auth import TOTP

    from tests.test_account_throttles import in_parallel

    set_up_totp(person)
    limit = settings.KEYVAULT_SIGNIN_FAILURES_PER_ACCOUNT
    clients = []
    for i in range(20):
        client = Client(REMOTE_ADDR=f"198.51.100.{i + 1}")
        assert sign_in(client, person)["Location"] == STAGE
        clients.append(client)
    checks = []
    real = TOTP.validate_code

    def counting(self, code):
        checks.append(1)
        return real(self, code)

    with mock.patch.object(TOTP, "validate_code", counting):
        in_parallel(20, lambda i: clients[i].post(STAGE, {"code": f"{i:06d}"}).status_code)

    assert len(checks) == limit
