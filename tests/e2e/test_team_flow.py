"""A team's day in a real browser: the owner signs in, adds and rotates a key, hands a proxy a
token that really fetches the secret over HTTP, invites a colleague who signs up from the
emailed link and sees the keys only masked, and the owner deletes the key, which the proxy
then stops receiving. Plus the sign-in form by keyboard alone and the key list on a phone."""

import json
import re
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from organizations import roles
from tests.e2e.conftest import PHONE
from tests.factories import (
    PASSWORD,
    MembershipFactory,
    OrganizationFactory,
    ProviderKeyFactory,
    UserFactory,
)

OWNER_EMAIL = "olivia@acme.test"
INVITEE_EMAIL = "maya@acme.test"
INVITEE_PASSWORD = "lantern-orchard-47-plum"

OPENAI_SECRET = "sk-proj-e2eFirstSecretAbcdefghijklmnop1111"
OPENAI_HINT = "sk-proj-…1111"
ROTATED_SECRET = "sk-proj-e2eRotatedSecretQrstuvwxyz2222"
ROTATED_HINT = "sk-proj-…2222"
AZURE_SECRET = "3f9c2a7e1b8d4c6f9a0e5d2b7c1a8f4e"

# Keys the team already has, of several providers, added by the owner.
EXISTING_KEYS = [
    {
        "provider": "anthropic",
        "name": "claude-prod",
        "secret": "sk-ant-api03-e2eAnthropicSecretValue0000aaaa",
        "is_default": True,
    },
    {
        "provider": "bedrock",
        "name": "bedrock-batch",
        "secret": "wJalrXUtnFEMIe2eK7MDENGbPxRfiCYEXAMPLEKEY",
        "config": {"region": "us-east-1", "access_key_id": "AKIAIOSFODNN7EXAMPLE"},
    },
    {
        "provider": "groq",
        "name": "groq-experiments",
        "secret": "gsk_e2eGroqSecretValue1234567890bbbb",
        "enabled": False,
    },
]
EVERY_SECRET = [OPENAI_SECRET, ROTATED_SECRET, AZURE_SECRET] + [
    key["secret"] for key in EXISTING_KEYS
]


@pytest.fixture
def team(site):
    """Acme Robotics, its owner, and the keys it already has."""
    owner = UserFactory(email=OWNER_EMAIL)
    organization = OrganizationFactory(name="Acme Robotics", slug="acme")
    MembershipFactory(user=owner, organization=organization, role=roles.OWNER.id)
    for key in EXISTING_KEYS:
        ProviderKeyFactory(organization=organization, created_by=owner, **key)
    return organization


def sign_in(page, site, email, password=PASSWORD):
    page.goto(f"{site}/accounts/sign-in/")
    field(page, "Email").fill(email)
    field(page, "Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Provider keys", level=1)).to_be_visible()


def field(page, label):
    """The form field labelled `label`, in any case (Django's labels end with a colon)."""
    return page.get_by_label(re.compile(rf"^{re.escape(label)}:?$", re.IGNORECASE))


def assert_no_secret_in(page):
    html = page.content()
    for secret in EVERY_SECRET:
        assert secret not in html


def fetch_secret(site, key_id, token):
    """What a proxy does: GET the key's secret with its bearer token. Returns (status, body)."""
    # The live server's own http:// URL, never a user-supplied one.
    request = urllib.request.Request(  # noqa: S310
        f"{site}/api/v1/keys/{key_id}/secret", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def row_of(page, text):
    """The table row with a cell whose whole text is `text`."""
    return page.locator("tr", has=page.get_by_text(text, exact=True))


@pytest.mark.usefixtures("team")
def test_owner_manages_a_key_that_a_proxy_and_a_new_member_use(
    site, open_page, mailoutbox, screenshot
):
    # Clipboard access lets the test check what the copy button copied.
    page = open_page(permissions=["clipboard-read", "clipboard-write"])

    # The owner signs in and lands on the organization's keys.
    page.goto(f"{site}/accounts/sign-in/")
    field(page, "Email").fill(OWNER_EMAIL)
    field(page, "Password").fill(PASSWORD)
    screenshot(page, "sign-in")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{site}/o/acme/keys/")
    expect(page.get_by_role("heading", name="Provider keys", level=1)).to_be_visible()

    # Adds an OpenAI key: picking the provider moves straight on to its form.
    page.get_by_role("link", name="Add a key").click()
    # The chooser moves on by script: wait for the page's scripts before picking.
    page.wait_for_load_state("load")
    field(page, "Provider").select_option("openai")
    expect(page.get_by_role("heading", name="Add a key: OpenAI")).to_be_visible()
    field(page, "Name").fill("gateway-prod")
    field(page, "API key").fill(OPENAI_SECRET)
    page.get_by_role("button", name="Add key").click()
    expect(page.get_by_role("status")).to_contain_text(f"Added gateway-prod ({OPENAI_HINT}).")
    expect(row_of(page, "gateway-prod")).to_contain_text(OPENAI_HINT)
    assert_no_secret_in(page)

    # And an Azure OpenAI deployment, whose form asks for its endpoint and deployment.
    page.get_by_role("link", name="Add a key").click()
    # The chooser moves on by script: wait for the page's scripts before picking.
    page.wait_for_load_state("load")
    field(page, "Provider").select_option("azure_openai")
    expect(page.get_by_role("heading", name="Add a key: Azure OpenAI")).to_be_visible()
    field(page, "Name").fill("azure-eastus")
    field(page, "API key").fill(AZURE_SECRET)
    field(page, "Endpoint").fill("https://acme-eastus.openai.azure.com")
    field(page, "Deployment").fill("gpt-4o")
    field(page, "API version").fill("2024-10-21")
    screenshot(page, "add-key-azure-openai")
    page.get_by_role("button", name="Add key").click()
    expect(row_of(page, "azure-eastus")).to_contain_text("…8f4e")
    assert_no_secret_in(page)
    screenshot(page, "keys")

    # Rotates the OpenAI key: version 2, a new hint, and still no secret on the page.
    rotate = page.get_by_role("link", name="Rotate gateway-prod")
    key_id = re.search(r"/keys/([0-9a-f-]{36})/rotate/", rotate.get_attribute("href")).group(1)
    rotate.click()
    expect(page.get_by_role("heading", name="Rotate gateway-prod")).to_be_visible()
    field(page, "New API key").fill(ROTATED_SECRET)
    screenshot(page, "rotate")
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Rotated gateway-prod: now version 2 ({ROTATED_HINT})."
    )
    row = row_of(page, "gateway-prod")
    expect(row).to_contain_text("v2")
    expect(row).to_contain_text(ROTATED_HINT)
    assert_no_secret_in(page)

    # Creates a proxy token that may read secrets; the token is shown once, with a copy button.
    page.get_by_role("link", name="Proxy tokens").click()
    page.get_by_role("link", name="Create a token").click()
    field(page, "Name").fill("edge-proxy")
    page.get_by_role("checkbox", name=re.compile(r"^keys:read ")).check()
    page.get_by_role("checkbox", name=re.compile(r"^keys:secret ")).check()
    page.get_by_role("checkbox", name=re.compile(r"^keys:write ")).uncheck()
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("heading", name="Token edge-proxy created")).to_be_visible()
    token = field(page, "Token").input_value()
    assert token.startswith("kvp_")
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("[data-copy-target]")).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == token
    screenshot(page, "token-created")
    page.get_by_role("link", name="I have copied it").click()
    expect(row_of(page, "edge-proxy")).to_contain_text(f"kvp_…{token[-4:]}")
    assert token not in page.content()
    screenshot(page, "tokens")

    # A proxy uses the token over real HTTP and receives the rotated secret.
    status, body = fetch_secret(site, key_id, token)
    assert status == 200
    assert (body["secret"], body["version"], body["hint"]) == (ROTATED_SECRET, 2, ROTATED_HINT)

    # Invites a colleague by email; the invitation waits on the members page.
    page.get_by_role("link", name="Members").click()
    page.get_by_role("link", name="Invite someone").click()
    field(page, "Email address").fill(INVITEE_EMAIL)
    field(page, "Role").select_option(roles.MEMBER.id)
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("status")).to_contain_text(f"Invited {INVITEE_EMAIL} as member.")
    expect(row_of(page, INVITEE_EMAIL)).to_contain_text(OWNER_EMAIL)
    screenshot(page, "members")
    (invitation,) = mailoutbox
    assert invitation.to == [INVITEE_EMAIL]
    link = re.search(r"http://\S+/invitations/\S+/", invitation.body).group(0)
    assert link.startswith(site)

    # Signs out through the account menu.
    page.get_by_role("banner").get_by_text(OWNER_EMAIL).click()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    # The colleague opens the link in their own browser, signs up and lands on the keys.
    colleague = open_page()
    colleague.goto(link)
    expect(colleague.get_by_role("heading", name="Join Acme Robotics")).to_be_visible()
    field(colleague, "Password").fill(INVITEE_PASSWORD)
    field(colleague, "Password again").fill(INVITEE_PASSWORD)
    colleague.get_by_role("button", name="Create account and join").click()
    expect(colleague.get_by_role("status")).to_contain_text("You joined Acme Robotics as member.")
    expect(colleague).to_have_url(f"{site}/o/acme/keys/")
    expect(row_of(colleague, "gateway-prod")).to_contain_text(ROTATED_HINT)
    expect(colleague.get_by_role("link", name="Proxy tokens")).to_have_count(0)
    expect(colleague.get_by_role("link", name="Rotate gateway-prod")).to_have_count(0)
    assert_no_secret_in(colleague)

    # Back as the owner: deleting the key warns that proxies will stop receiving it.
    sign_in(page, site, OWNER_EMAIL)
    page.get_by_role("link", name="Delete gateway-prod").click()
    expect(page.get_by_role("heading", name="Delete gateway-prod?")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Proxies will stop receiving this key")
    page.get_by_role("button", name="Delete key").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted gateway-prod.")
    expect(row_of(page, "gateway-prod")).to_have_count(0)

    # ...and the proxy no longer receives it.
    status, body = fetch_secret(site, key_id, token)
    assert status == 404
    assert "secret" not in body

    # The audit log tells the whole story.
    page.get_by_role("link", name="Audit log").click()
    log = page.locator("table.audit")
    # By their readable names; the codes are the cells' titles.
    for action, name in [
        ("provider_key.created", "Key added"),
        ("provider_key.rotated", "Key rotated"),
        ("proxy_token.created", "Proxy token created"),
        ("invitation.created", "Invitation sent"),
        ("invitation.accepted", "Invitation accepted"),
        ("provider_key.deleted", "Key deleted"),
    ]:
        expect(log).to_contain_text(name)
        expect(log.locator(f'td[title="{action}"]').first).to_be_visible()
    assert_no_secret_in(page)
    assert token not in page.content()
    screenshot(page, "audit")


@pytest.mark.usefixtures("team")
def test_sign_in_form_submits_with_the_keyboard_alone(site, open_page):
    page = open_page()
    page.goto(f"{site}/accounts/sign-in/")
    # The email field has focus on arrival; Tab moves to the password, Enter submits.
    expect(field(page, "Email")).to_be_focused()
    page.keyboard.type(OWNER_EMAIL)
    page.keyboard.press("Tab")
    expect(field(page, "Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{site}/o/acme/keys/")
    expect(page.get_by_role("heading", name="Provider keys", level=1)).to_be_visible()


@pytest.mark.usefixtures("team")
def test_key_list_fits_a_phone_screen(site, open_page, screenshot):
    page = open_page(viewport=PHONE)
    sign_in(page, site, OWNER_EMAIL)
    expect(row_of(page, "claude-prod")).to_be_visible()
    page_width, screen_width = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert page_width <= screen_width, (
        f"the page is {page_width}px wide on a {screen_width}px screen"
    )
    assert_no_secret_in(page)
    screenshot(page, "keys-phone")
