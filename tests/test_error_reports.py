"""Error reports carry no secret: a failure forced deep inside code that holds a provider
secret, a proxy or invitation token or a password yields a report (what Django's error email
would send, text and HTML, and the debug page) that names the failure but not the secret."""

import logging
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils.log import AdminEmailHandler
from django.views.debug import SafeExceptionReporterFilter

from keyvault.models import ProviderKey
from organizations import roles
from tests.factories import InvitationFactory, ProviderKeyFactory, UserFactory
from tests.helpers import bearer, url

pytestmark = pytest.mark.django_db

SECRET = "sk-proj-NeverInAReportQwErTyUiOpAsDfGhJkLzXc"
TOKEN = "kvp_R3portMustN0tShowThisT0ken" + "x" * 17
PASSWORD = "a-Password-no-report-may-show-9317"
FAILURE = "forced failure for the report"
MASK = SafeExceptionReporterFilter.cleansed_substitute


@dataclass
class Report:
    subject: str
    text: str
    html: str

    def everything(self) -> str:
        return "\n".join((self.subject, self.text, self.html))


class RecordingEmailHandler(AdminEmailHandler):
    """Django's error-email handler (with the configured reporter and filter), keeping what it
    would send instead of sending it."""

    def __init__(self):
        super().__init__(include_html=True)
        self.setLevel(logging.ERROR)
        self.sent: list[Report] = []

    def send_mail(self, subject, message, *args, html_message=None, **kwargs):
        self.sent.append(Report(subject, message, html_message))


@pytest.fixture
def reports():
    handler = RecordingEmailHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler.sent
    root.removeHandler(handler)


@pytest.fixture
def fail_in(monkeypatch):
    """`fail_in("audit.record")`: that function raises from now on."""

    def install(target):
        def fail(*args, **kwargs):
            raise RuntimeError(FAILURE)

        monkeypatch.setattr(target, fail)

    return install


def client_for(user=None) -> Client:
    client = Client(raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    return client


def the_report(reports, *, secrets, names) -> Report:
    """The report of the failure (the API also reports its 500 answer, without a traceback):
    it names the failure and the frames it passed; no report holds any of `secrets`."""
    for secret in secrets:
        assert all(secret not in report.everything() for report in reports)
    [report] = [r for r in reports if FAILURE in r.text]
    for text in (report.text, report.html):
        assert FAILURE in text
        assert MASK in text
        for name in names:
            assert name in text
    return report


@pytest.fixture
def owner_client(organization, owner):
    return client_for(owner)


# --- Pages ----------------------------------------------------------------------------------


def test_failure_while_adding_a_key_on_the_pages(organization, owner_client, reports, fail_in):
    fail_in("audit.record")

    response = owner_client.post(
        f"{url('keys:add', organization)}?provider=openai",
        {"name": "Production", "secret": SECRET, "enabled": "on"},
    )

    assert response.status_code == 500
    the_report(reports, secrets=[SECRET], names=["key_add", "provider_key_create"])
    assert not ProviderKey.objects.filter(name="Production").exists()


def test_failure_while_rotating_a_key_on_the_pages(
    organization, owner_client, provider_key, reports, fail_in
):
    fail_in("audit.record")

    response = owner_client.post(
        url("keys:rotate", organization, pk=provider_key.pk), {"secret": SECRET}
    )

    assert response.status_code == 500
    the_report(reports, secrets=[SECRET], names=["key_rotate", "provider_key_rotate"])


def test_failure_deep_in_the_encryption_of_a_new_key(organization, owner_client, reports, fail_in):
    fail_in("keyvault.crypto.envelope.AESGCM")

    owner_client.post(
        f"{url('keys:add', organization)}?provider=openai",
        {"name": "Production", "secret": SECRET, "enabled": "on"},
    )

    the_report(reports, secrets=[SECRET], names=["seal", "provider_key_create"])


def test_the_debug_page_masks_the_secret_too(
    organization, owner_client, provider_key, settings, fail_in
):
    settings.DEBUG = True
    fail_in("audit.record")

    response = owner_client.post(
        url("keys:rotate", organization, pk=provider_key.pk), {"secret": SECRET}
    )

    page = response.content.decode()
    assert response.status_code == 500
    assert FAILURE in page
    assert "provider_key_rotate" in page
    assert SECRET not in page


def test_failure_while_creating_a_token_on_the_pages(
    organization, owner_client, reports, fail_in, monkeypatch
):
    monkeypatch.setattr("keyvault.services.proxy_tokens.generate_token", lambda: TOKEN)
    fail_in("audit.record")

    response = owner_client.post(
        url("tokens:create", organization), {"name": "gateway", "scopes": ["keys:read"]}
    )

    assert response.status_code == 500
    the_report(reports, secrets=[TOKEN], names=["token_create", "proxy_token_create"])


@pytest.fixture
def fail_rendering_the_token(monkeypatch):
    """Rendering `{{ raw_token }}` fails: the template's frames hold the token in `context`."""
    from django.template import base

    monkeypatch.setattr("keyvault.services.proxy_tokens.generate_token", lambda: TOKEN)
    render_value = base.render_value_in_context

    def render_or_fail(value, context):
        if value == TOKEN:
            raise RuntimeError(FAILURE)
        return render_value(value, context)

    monkeypatch.setattr(base, "render_value_in_context", render_or_fail)


def test_failure_while_rendering_a_new_token(
    organization, owner_client, reports, fail_rendering_the_token
):
    response = owner_client.post(
        url("tokens:create", organization), {"name": "gateway", "scopes": ["keys:read"]}
    )

    assert response.status_code == 500
    the_report(reports, secrets=[TOKEN], names=["token_create", "render"])


def test_failure_while_signing_in(reports, fail_in):
    user = UserFactory(password=PASSWORD)
    fail_in("accounts.backends.find_user")

    response = client_for().post(
        reverse("accounts:sign_in"), {"login": user.email, "password": PASSWORD}
    )

    assert response.status_code == 500
    the_report(reports, secrets=[PASSWORD], names=["authenticate"])


def test_failure_while_signing_up(reports, fail_in):
    fail_in("accounts.services.validate_password")

    response = client_for().post(
        reverse("accounts:sign_up"),
        {
            "email": "new@example.com",
            "organization_name": "New Org",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )

    assert response.status_code == 500
    the_report(reports, secrets=[PASSWORD], names=["sign_up", "user_get_or_create"])
    assert not get_user_model().objects.filter(email="new@example.com").exists()


def test_failure_while_opening_an_invitation_link(organization, reports, fail_in):
    invitation = InvitationFactory(organization=organization)
    fail_in("organizations.invitations.invitation_token_digest")

    response = client_for().get(reverse("invitations:open", args=[invitation.raw]))

    assert response.status_code == 500
    # The token is in the request's URL, not only in the frames.
    report = the_report(reports, secrets=[invitation.raw], names=["invitation_for_token"])
    assert "kvi_[redacted]" in report.subject


def test_the_log_line_of_an_unknown_invitation_link_masks_the_token(caplog):
    link = "kvi_" + "x" * 43

    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client_for().get(reverse("invitations:open", args=[link]))

    assert response.status_code == 404
    assert [r.getMessage() for r in caplog.records] == ["Not Found: /invitations/kvi_[redacted]/"]


# --- The admin ----------------------------------------------------------------------------


@pytest.fixture
def admin_client(organization, member_of):
    return client_for(member_of(organization, roles.ADMIN.id).user)


def test_failure_while_adding_a_key_in_the_admin(organization, admin_client, reports, fail_in):
    fail_in("audit.record")

    response = admin_client.post(
        "/admin/keyvault/providerkey/add/",
        {
            "organization": str(organization.pk),
            "provider": "openai",
            "name": "Admin Key",
            "new_secret": SECRET,
            "config": "{}",
            "enabled": "on",
        },
    )

    assert response.status_code == 500
    report = the_report(
        reports, secrets=[SECRET], names=["save_through_services", "provider_key_create"]
    )
    assert "new_secret" in report.text  # the POST data is listed, its value masked


def test_failure_while_rotating_a_key_in_the_admin(
    organization, admin_client, provider_key, reports, fail_in
):
    url = f"/admin/keyvault/providerkey/{provider_key.pk}/change/"
    data = {"name": provider_key.name, "config": "{}", "enabled": "on", "new_secret": SECRET}
    fail_in("audit.record")

    response = admin_client.post(url, data)

    assert response.status_code == 500
    the_report(reports, secrets=[SECRET], names=["save_through_services", "provider_key_update"])


def test_failure_while_creating_a_token_in_the_admin(
    organization, owner, reports, fail_in, monkeypatch
):
    monkeypatch.setattr("keyvault.services.proxy_tokens.generate_token", lambda: TOKEN)
    fail_in("audit.record")

    response = client_for(owner).post(
        "/admin/keyvault/proxytoken/add/",
        {"organization": str(organization.pk), "name": "gateway", "token_scopes": ["keys:read"]},
    )

    assert response.status_code == 500
    the_report(reports, secrets=[TOKEN], names=["save_through_services", "proxy_token_create"])


def test_failure_while_rendering_a_new_token_in_the_admin(
    organization, owner, reports, fail_rendering_the_token
):
    response = client_for(owner).post(
        "/admin/keyvault/proxytoken/add/",
        {"organization": str(organization.pk), "name": "gateway", "token_scopes": ["keys:read"]},
    )

    assert response.status_code == 500
    the_report(reports, secrets=[TOKEN], names=["response_add", "render"])


# --- The API ------------------------------------------------------------------------------


def test_failure_while_creating_a_key_through_the_api(make_token, reports, fail_in):
    token = make_token("keys:write", "keys:read")
    fail_in("audit.record")

    response = client_for().post(
        "/api/v1/keys",
        {"provider": "openai", "name": "api", "secret": SECRET},
        content_type="application/json",
        **bearer(token),
    )

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}
    the_report(
        reports, secrets=[SECRET, token.raw], names=["keyvault/api/views.py", "provider_key_create"]
    )


def test_failure_while_rotating_a_key_through_the_api(make_token, provider_key, reports, fail_in):
    token = make_token("keys:write", "keys:read")
    fail_in("audit.record")

    response = client_for().patch(
        f"/api/v1/keys/{provider_key.pk}",
        {"secret": SECRET},
        content_type="application/json",
        **bearer(token),
    )

    assert response.status_code == 500
    the_report(
        reports, secrets=[SECRET, token.raw], names=["keyvault/api/views.py", "provider_key_update"]
    )


def test_failure_after_decrypting_for_the_api(make_token, organization, reports, fail_in):
    key = ProviderKeyFactory(organization=organization, secret=SECRET, is_default=True)
    token = make_token("keys:secret")
    fail_in("keyvault.retrieval.recorder.record_secret_retrieval")

    response = client_for().get(f"/api/v1/keys/{key.pk}/secret", **bearer(token))

    assert response.status_code == 500
    the_report(reports, secrets=[SECRET, token.raw], names=["retrieve_secret"])


def test_failure_while_checking_a_bearer_token(make_token, reports, fail_in):
    token = make_token("keys:read")
    fail_in("keyvault.token_auth.token_digest")

    response = client_for().get("/api/v1/keys", **bearer(token))

    assert response.status_code == 500
    the_report(reports, secrets=[token.raw], names=["authenticate", "proxy_token_authenticate"])
