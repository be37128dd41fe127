"""Security properties of the team pages as a whole: a provider secret, once typed, comes back
in no response, cookie, session or message; views that take a secret or a password hide it from
error reports; every page carries the security headers, has no inline code for the CSP to
block, loads its CSS and JS from /static/, and labels every input."""

import json
import re

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.staticfiles import finders
from django.test import Client, RequestFactory
from django.urls import resolve, reverse
from django.views.debug import SafeExceptionReporterFilter

from accounts import views as account_views
from audit.models import AuditEvent
from keyvault.models import ProviderKey, ProxyToken
from keyvault.web import keys as key_views
from organizations import roles
from organizations.models import Invitation, Membership
from organizations.web import sign_up as sign_up_pages
from tests.factories import InvitationFactory, ProviderKeyFactory, ProxyTokenFactory, UserFactory
from tests.helpers import Tags, stored_beside_pages, url

pytestmark = pytest.mark.django_db

# Distinctive and long: a 40-character run of it appearing anywhere means the secret leaked.
SECRET = "sk-proj-Z9qLeakCanaryQ7wE3rT5yU1iO8pA6sD4fG2hJ0kLmNbVcXz1234"
CANARY = SECRET[8:52]
NEW_SECRET = "sk-proj-R0tat3LeakCanaryMnBvCxZlKjHgFdSaPoIuYtReWq9876"
NEW_CANARY = NEW_SECRET[8:50]
SERVICE_ACCOUNT_CANARY = "VertexPrivateKeyLeakCanaryZq81xWmNbVcXzLkJhGf"


def assert_no_leak(html: str, *secrets: str, where: str = "") -> None:
    for secret in secrets:
        assert secret not in html, where
        # Any 40-character run of it, in case it was cut, wrapped or prefixed.
        for start in range(max(1, len(secret) - 39)):
            assert secret[start : start + 40] not in html, where


# --- A secret, once typed, never comes back --------------------------------------------------


@pytest.fixture
def populated(organization, owner, owner_client, member_of):
    """An organization with a key added through the page (the response followed), a token, a
    pending invitation and a second member, so that every page has something to show."""
    added = owner_client.post(
        f"{url('keys:add', organization)}?provider=openai",
        {"name": "Leaky", "secret": SECRET, "enabled": "on", "is_default": "on"},
        follow=True,
    )
    ProxyTokenFactory(organization=organization, name="gateway")
    InvitationFactory(organization=organization, invited_by=owner)
    member_of(organization, roles.MEMBER.id)
    return {"added": added, "key": ProviderKey.objects.get(name="Leaky")}


def every_page(organization, key) -> list[str]:
    token = ProxyToken.objects.get(organization=organization)
    member = Membership.objects.filter(organization=organization).exclude(role="owner").first()
    return [
        reverse("home"),
        reverse("orgs:list"),
        reverse("orgs:create"),
        url("keys:list", organization),
        url("keys:list", organization) + "?provider=openai&q=leaky",
        url("keys:add", organization),
        url("keys:add", organization) + "?provider=openai",
        url("keys:edit", organization, pk=key.pk),
        url("keys:rotate", organization, pk=key.pk),
        url("keys:delete", organization, pk=key.pk),
        url("tokens:list", organization),
        url("tokens:create", organization),
        url("tokens:revoke", organization, pk=token.pk),
        url("audit:list", organization),
        url("audit:list", organization) + "?action=provider_key.created",
        url("members:list", organization),
        url("members:invite", organization),
        url("members:remove", organization, pk=member.pk),
        url("settings:index", organization),
        url("settings:delete", organization),
        reverse("accounts:password_change"),
    ]


def test_the_add_response_shows_only_the_hint(populated):
    added = populated["added"]

    assert added.redirect_chain[-1][1] == 302
    html = added.content.decode()
    assert populated["key"].secret_hint in html
    assert_no_leak(html, SECRET)


def test_no_page_of_the_organization_shows_the_secret(organization, owner_client, populated):
    for page in every_page(organization, populated["key"]):
        response = owner_client.get(page, follow=True)
        assert response.status_code == 200, page
        assert_no_leak(response.content.decode(), SECRET, where=page)


def test_the_secret_is_in_no_session_cookie_message_or_audit_event(owner_client, populated):
    assert_no_leak(stored_beside_pages(owner_client), SECRET)


def test_an_add_form_shown_again_with_errors_does_not_echo_the_secret(
    organization, owner_client, populated
):
    response = owner_client.post(
        f"{url('keys:add', organization)}?provider=openai",
        {"name": "leaky", "secret": NEW_SECRET, "is_default": "on"},
    )

    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"name", "is_default"}
    assert_no_leak(response.content.decode(), NEW_SECRET, SECRET)
    assert_no_leak(stored_beside_pages(owner_client), NEW_SECRET)


@pytest.mark.parametrize(
    "typed",
    [NEW_SECRET + "x" * (16 * 1024), NEW_SECRET + "\x00"],
    ids=["too large", "null character"],
)
def test_a_rotate_form_shown_again_with_errors_does_not_echo_the_secret(
    organization, owner_client, populated, typed
):
    key = populated["key"]

    response = owner_client.post(url("keys:rotate", organization, pk=key.pk), {"secret": typed})

    assert response.status_code == 200
    assert "secret" in response.context["form"].errors
    assert_no_leak(response.content.decode(), NEW_SECRET, SECRET)
    assert ProviderKey.objects.get(pk=key.pk).version == 1


def test_a_service_account_rotate_form_shown_again_does_not_echo_the_private_key(
    organization, owner, owner_client
):
    key = ProviderKeyFactory(
        organization=organization,
        provider="vertex",
        name="vertex",
        config={"project": "my-project", "location": "us-central1"},
        created_by=owner,
        secret=json.dumps(
            {"type": "service_account", "private_key": "x", "client_email": "a@b.iam"}
        ),
    )
    # Missing client_email: the service refuses it, and the form comes back.
    typed = json.dumps({"type": "service_account", "private_key": SERVICE_ACCOUNT_CANARY})

    response = owner_client.post(url("keys:rotate", organization, pk=key.pk), {"secret": typed})

    assert response.status_code == 200
    assert "secret" in response.context["form"].errors
    assert SERVICE_ACCOUNT_CANARY not in response.content.decode()


# --- Forms need their CSRF token ----------------------------------------------------------------


def test_a_write_without_the_csrf_token_is_refused_and_writes_nothing(organization, owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    keys, events = ProviderKey.objects.count(), AuditEvent.objects.count()

    added = client.post(
        f"{url('keys:add', organization)}?provider=openai",
        {"name": "Forged", "secret": SECRET, "enabled": "on"},
    )
    signed_out = client.post(reverse("accounts:sign_out"))

    assert added.status_code == signed_out.status_code == 403
    assert "The form expired" in added.content.decode()
    assert (ProviderKey.objects.count(), AuditEvent.objects.count()) == (keys, events)
    assert client.get(url("keys:list", organization)).status_code == 200  # still signed in


def test_a_write_with_the_pages_csrf_token_goes_through(organization, owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    form = client.get(f"{url('keys:add', organization)}?provider=openai").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)

    response = client.post(
        f"{url('keys:add', organization)}?provider=openai",
        {"name": "Real", "secret": SECRET, "enabled": "on", "csrfmiddlewaretoken": token},
    )

    assert response.status_code == 302
    assert ProviderKey.objects.filter(name="Real").exists()


# --- Error reports never carry a secret or a password ----------------------------------------


def post_request(path, data):
    request = RequestFactory().post(path, data, REMOTE_ADDR="192.0.2.1")
    request.user = AnonymousUser()
    request._dont_enforce_csrf_checks = True
    return request


def reported(request) -> dict:
    return SafeExceptionReporterFilter().get_post_parameters(request)


MASK = SafeExceptionReporterFilter.cleansed_substitute


@pytest.mark.parametrize("view", [key_views.key_add, key_views.key_rotate])
def test_key_views_hide_the_secret_from_error_reports(view):
    request = post_request("/o/acme/keys/add/?provider=openai", {"name": "n", "secret": SECRET})

    view(request, org_slug="acme", **({"pk": "x"} if view is key_views.key_rotate else {}))

    assert "secret" in request.sensitive_post_parameters
    assert reported(request)["secret"] == MASK
    assert reported(request)["name"] == "n"


def test_sign_up_hides_the_passwords_from_error_reports():
    request = post_request(
        "/accounts/sign-up/",
        {"email": "a@example.com", "organization_name": "A", "password1": "p1", "password2": "p2"},
    )
    request.session = Client().session

    sign_up_pages.sign_up(request)

    params = reported(request)
    assert (params["password1"], params["password2"]) == (MASK, MASK)
    assert params["email"] == "a@example.com"


def opened(link):
    """A browser that opened `link`, and the address the link's page answers at."""
    browser = Client()
    response = browser.get(link, follow=True)
    return browser, (response.redirect_chain[-1][0] if response.redirect_chain else link)


def test_invitation_accept_hides_the_passwords_from_error_reports(organization):
    invitation = InvitationFactory(organization=organization)
    browser, page = opened(f"/invitations/{invitation.raw}/")
    request = post_request(page, {"password1": "p1", "password2": "p2"})
    request.session = browser.session
    match = resolve(page)

    response = match.func(request, *match.args, **match.kwargs)

    assert response.status_code == 200  # the form, shown again: the passwords differ
    params = reported(request)
    assert (params["password1"], params["password2"]) == (MASK, MASK)
    assert Invitation.objects.get(pk=invitation.pk).is_pending


def test_sign_in_hides_the_password_from_error_reports():
    request = post_request("/accounts/sign-in/", {"login": "a@example.com", "password": "p"})
    request.session = Client().session

    account_views.SignInView.as_view()(request)

    assert reported(request)["password"] == MASK


# --- Headers, inline code, static files and labels on every page -----------------------------


INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.I)
STYLE_ELEMENT = re.compile(r"<style\b", re.I)
STYLE_ATTRIBUTE = re.compile(r"<[a-z][^>]*\sstyle\s*=", re.I)
EVENT_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)
JAVASCRIPT_URL = re.compile(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", re.I)


@pytest.fixture
def site(organization, owner, member_of, signed_in):
    """Every kind of team page, each as `(label, client, method, path, data, status)`."""
    key = ProviderKeyFactory(organization=organization, name="Prod", created_by=owner)
    vertex_key = ProviderKeyFactory(
        organization=organization,
        provider="vertex",
        name="vertex",
        config={"project": "my-project", "location": "us-central1"},
        secret=json.dumps(
            {"type": "service_account", "private_key": "x", "client_email": "a@b.iam"}
        ),
    )
    token = ProxyTokenFactory(organization=organization)
    member = member_of(organization, roles.MEMBER.id)
    viewer = member_of(organization, roles.VIEWER.id)
    new_invite = InvitationFactory(organization=organization, invited_by=owner)
    existing = UserFactory(email="has.account@example.com")
    existing_invite = InvitationFactory(
        organization=organization, email=existing.email, invited_by=owner
    )
    used = InvitationFactory(organization=organization, invited_by=owner)
    Invitation.objects.filter(pk=used.pk).update(revoked_at=organization.created_at)
    owner_c, viewer_c, anonymous = signed_in(owner), signed_in(viewer.user), Client()
    invitee, invitee_page = opened(f"/invitations/{new_invite.raw}/")
    has_account, has_account_page = opened(f"/invitations/{existing_invite.raw}/")
    empty = member_of(
        type(organization).objects.create(name="Empty", slug="empty"), roles.OWNER.id, user=owner
    ).organization
    add = url("keys:add", organization)
    pages = [
        ("landing", anonymous, "get", reverse("home"), None, 200),
        ("sign in", anonymous, "get", reverse("accounts:sign_in"), None, 200),
        ("sign in error", anonymous, "post", reverse("accounts:sign_in"), {"login": "x"}, 200),
        ("sign up", anonymous, "get", reverse("accounts:sign_up"), None, 200),
        ("sign up error", anonymous, "post", reverse("accounts:sign_up"), {"email": "x"}, 200),
        ("reset", anonymous, "get", reverse("accounts:password_reset"), None, 200),
        ("reset sent", anonymous, "get", reverse("accounts:password_reset_done"), None, 200),
        ("reset done", anonymous, "get", reverse("accounts:password_reset_complete"), None, 200),
        (
            "reset bad link",
            anonymous,
            "get",
            "/accounts/password/reset/key/1-bad-token/",
            None,
            200,
        ),
        ("reset old link", anonymous, "get", "/accounts/password/reset/MQ/bad-token/", None, 200),
        ("invite link", anonymous, "get", f"/invitations/{new_invite.raw}/", None, 200),
        ("invite sign up", invitee, "get", invitee_page, None, 200),
        ("invite sign up error", invitee, "post", invitee_page, {"password1": "a"}, 200),
        ("invite sign in", has_account, "get", has_account_page, None, 200),
        ("invite closed", anonymous, "get", f"/invitations/{used.raw}/", None, 410),
        ("invite unknown", anonymous, "get", "/invitations/kvi_nothing/", None, 404),
        ("not found", owner_c, "get", "/o/nobody-here/keys/", None, 404),
        ("forbidden", viewer_c, "get", url("tokens:list", organization), None, 403),
        ("admin sign in", anonymous, "get", "/admin/login/", None, 200),
        ("admin refused", viewer_c, "get", "/admin/login/", None, 403),
        ("password change", owner_c, "get", reverse("accounts:password_change"), None, 200),
        ("email addresses", owner_c, "get", reverse("account_email"), None, 200),
        ("reauthenticate", owner_c, "get", reverse("account_reauthenticate"), None, 200),
        ("orgs", owner_c, "get", reverse("orgs:list"), None, 200),
        ("new org", owner_c, "get", reverse("orgs:create"), None, 200),
        ("keys", owner_c, "get", url("keys:list", organization), None, 200),
        ("keys filtered", owner_c, "get", url("keys:list", organization) + "?q=zz", None, 200),
        ("keys empty", owner_c, "get", url("keys:list", empty), None, 200),
        ("keys as viewer", viewer_c, "get", url("keys:list", organization), None, 200),
        ("chooser", owner_c, "get", add, None, 200),
        ("add openai", owner_c, "get", add + "?provider=openai", None, 200),
        ("add azure", owner_c, "get", add + "?provider=azure_openai", None, 200),
        ("add bedrock", owner_c, "get", add + "?provider=bedrock", None, 200),
        ("add vertex", owner_c, "get", add + "?provider=vertex", None, 200),
        ("add error", owner_c, "post", add + "?provider=azure_openai", {"name": "x"}, 200),
        ("edit", owner_c, "get", url("keys:edit", organization, pk=key.pk), None, 200),
        ("rotate", owner_c, "get", url("keys:rotate", organization, pk=key.pk), None, 200),
        (
            "rotate vertex",
            owner_c,
            "get",
            url("keys:rotate", organization, pk=vertex_key.pk),
            None,
            200,
        ),
        ("delete key", owner_c, "get", url("keys:delete", organization, pk=key.pk), None, 200),
        ("tokens", owner_c, "get", url("tokens:list", organization), None, 200),
        ("new token", owner_c, "get", url("tokens:create", organization), None, 200),
        (
            "token created",
            owner_c,
            "post",
            url("tokens:create", organization),
            {"name": "fresh", "scopes": ["keys:read"]},
            200,
        ),
        ("token error", owner_c, "post", url("tokens:create", organization), {"name": ""}, 200),
        (
            "revoke token",
            owner_c,
            "get",
            url("tokens:revoke", organization, pk=token.pk),
            None,
            200,
        ),
        ("audit", owner_c, "get", url("audit:list", organization), None, 200),
        ("members", owner_c, "get", url("members:list", organization), None, 200),
        ("members as viewer", viewer_c, "get", url("members:list", organization), None, 200),
        ("invite", owner_c, "get", url("members:invite", organization), None, 200),
        (
            "remove member",
            owner_c,
            "get",
            url("members:remove", organization, pk=member.pk),
            None,
            200,
        ),
        ("settings", owner_c, "get", url("settings:index", organization), None, 200),
        ("settings as viewer", viewer_c, "get", url("settings:index", organization), None, 200),
        ("delete org", owner_c, "get", url("settings:delete", organization), None, 200),
        ("password", owner_c, "get", reverse("accounts:password_change"), None, 200),
    ]
    return pages


def fetch(client, method, path, data):
    """The page a browser ends up on: GETs follow redirects (an invitation link leads on)."""
    if method == "get":
        return client.get(path, follow=True)
    return client.post(path, data or {})


def test_every_page_sends_the_security_headers(site):
    for label, client, method, path, data, status in site:
        response = fetch(client, method, path, data)
        assert response.status_code == status, label
        csp = {
            part.split()[0]: part.split()[1:]
            for part in response["Content-Security-Policy"].split(";")
            if part.strip()
        }
        assert csp["default-src"] == ["'self'"], label
        assert csp["script-src"] == ["'self'"], label
        assert csp["style-src"] == ["'self'"], label
        assert csp["frame-ancestors"] == ["'none'"], label
        assert "'unsafe-inline'" not in response["Content-Security-Policy"], label
        assert "'unsafe-eval'" not in response["Content-Security-Policy"], label
        assert response["X-Frame-Options"] == "DENY", label
        assert response["X-Content-Type-Options"] == "nosniff", label
        assert response["Referrer-Policy"] == "same-origin", label


def test_no_page_has_inline_code_the_policy_would_block(site):
    for label, client, method, path, data, _status in site:
        html = fetch(client, method, path, data).content.decode()
        assert not INLINE_SCRIPT.findall(html), label
        assert not STYLE_ELEMENT.findall(html), label
        assert not STYLE_ATTRIBUTE.findall(html), label
        assert not EVENT_HANDLER.findall(html), label
        assert not JAVASCRIPT_URL.findall(html), label


def test_pages_load_their_css_and_js_from_static(site):
    own = set()
    for label, client, method, path, data, _status in site:
        page = Tags(fetch(client, method, path, data).content.decode())
        sheets = [a["href"] for t, a in page.tags if t == "link" and a.get("rel") == "stylesheet"]
        scripts = [a["src"] for t, a in page.tags if t == "script"]
        assert sheets, label
        for address in sheets + scripts:
            assert address.startswith("/static/"), (label, address)
        own.update(a for a in sheets + scripts if not a.startswith("/static/admin/"))
    assert own == {"/static/css/keyvault.css", "/static/js/keyvault.js"}
    for address in own:
        assert finders.find(address.removeprefix("/static/")), address


def test_every_input_has_a_label(site):
    for label, client, method, path, data, _status in site:
        if label == "admin sign in":
            continue  # Django's own page
        page = Tags(fetch(client, method, path, data).content.decode())
        assert page.unlabelled_controls() == [], label


def test_the_label_check_notices_an_unlabelled_input():
    page = Tags('<label for="a">A</label><input id="a"><input id="b" name="b">')

    assert [attrs["name"] for attrs in page.unlabelled_controls()] == ["b"]


def test_the_inline_code_checks_notice_inline_code():
    html = (
        '<script>alert(1)</script><script src="/static/x.js"></script>'
        '<p style="color:red" onclick="x()"><a href="javascript:x()">'
    )

    assert INLINE_SCRIPT.findall(html) == ["<script>"]
    assert STYLE_ATTRIBUTE.findall(html) and EVENT_HANDLER.findall(html)
    assert JAVASCRIPT_URL.findall(html)
