"""The provider-key pages: adding through the services (with the user and address in the audit
trail), the masked list with its groups and filters, provider-driven config fields, errors beside
their fields with nothing written, editing, rotating and deleting."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from audit import AuditAction
from audit.models import AuditEvent
from keyvault import services
from keyvault.models import ProviderKey
from organizations import roles
from organizations.access import Access
from tests.factories import ProviderKeyFactory
from tests.helpers import Tags, field_block, rows, snapshot, url

pytestmark = pytest.mark.django_db

OPERATOR = Access.operator("tests")
SECRET = "sk-proj-PageAddedS3cretQwErTyUiOpAsDfGhJkLzXcV9f2a"
NEW_SECRET = "sk-proj-PageRotatedS3cretMnBvCxZlKjHgFdSaPoIu7b3c"
CLIENT_IP = "203.0.113.7"
AZURE = {
    "config_endpoint": "https://acme.openai.azure.com",
    "config_deployment": "gpt-4o",
    "config_api_version": "2024-06-01",
}


def add_url(organization, provider="openai"):
    return f"{url('keys:add', organization)}?provider={provider}"


def post_key(client, organization, provider="openai", **fields):
    data = {"name": "Production", "secret": SECRET, "enabled": "on", **fields}
    data = {name: value for name, value in data.items() if value is not None}
    return client.post(add_url(organization, provider), data, REMOTE_ADDR=CLIENT_IP)


# --- Adding -----------------------------------------------------------------------------------


def test_adding_a_key_stores_it_through_the_service_and_redirects_with_a_message(
    organization, owner, owner_client
):
    response = post_key(owner_client, organization, config_base_url="https://llm.example.com/v1")

    assert response.status_code == 302
    assert response["Location"] == url("keys:list", organization)
    key = ProviderKey.objects.get(organization=organization)
    assert (key.provider, key.name, key.enabled, key.is_default) == (
        "openai",
        "Production",
        True,
        False,
    )
    assert key.config == {"base_url": "https://llm.example.com/v1"}
    assert key.created_by == owner
    assert key.secret_hint == "sk-proj-…9f2a"
    assert services.provider_key_reveal(key=key, actor=OPERATOR) == SECRET

    page = owner_client.get(response["Location"])
    assert "Added Production (sk-proj-…9f2a)." in page.content.decode()


def test_adding_a_key_records_the_user_and_their_address_in_the_audit_trail(
    organization, owner, owner_client
):
    post_key(owner_client, organization)

    event = AuditEvent.objects.get(action=AuditAction.KEY_CREATED)
    key = ProviderKey.objects.get(organization=organization)
    assert event.organization == organization
    assert event.actor_user == owner
    assert event.actor_label == owner.email
    assert event.ip_address == CLIENT_IP
    assert event.target_id == str(key.pk)
    assert event.metadata["hint"] == key.secret_hint
    audit = owner_client.get(url("audit:list", organization) + "?action=provider_key.created")
    [row] = [r for r in re.findall(r"<tr>.*?</tr>", audit.content.decode(), re.S) if "<td" in r]
    assert owner.email in row and CLIENT_IP in row and key.secret_hint in row
    assert SECRET[8:] not in audit.content.decode()
    # The action by its name; its code stays as the cell's title and the filter's value.
    assert ">Key added</td>" in row and 'title="provider_key.created"' in row
    assert '<option value="provider_key.created" selected>Key added</option>' in (
        audit.content.decode()
    )


def test_a_key_added_with_the_boxes_unticked_is_disabled_and_not_default(
    organization, owner_client
):
    post_key(owner_client, organization, enabled=None)

    key = ProviderKey.objects.get(organization=organization)
    assert (key.enabled, key.is_default) == (False, False)


def test_the_secret_input_is_a_password_field_that_browsers_do_not_fill(organization, owner_client):
    html = owner_client.get(add_url(organization)).content.decode()

    [secret] = Tags(html).named("secret")
    assert secret["type"] == "password"
    assert secret["autocomplete"] == "off"
    assert "value" not in secret


# --- Provider-driven config fields -------------------------------------------------------------


def test_azure_openai_form_asks_for_endpoint_deployment_and_api_version(organization, owner_client):
    response = owner_client.get(add_url(organization, "azure_openai"))

    assert response.status_code == 200
    html = response.content.decode()
    tags = Tags(html)
    for name, label in [
        ("config_endpoint", "Endpoint"),
        ("config_deployment", "Deployment"),
        ("config_api_version", "API version"),
    ]:
        [field] = tags.named(name)
        assert "required" in field
        assert f'<label for="{field["id"]}">{label}:</label>' in html
    assert tags.named("config_endpoint")[0]["type"] == "url"
    assert not tags.named("config_base_url")
    assert "Add a key: Azure OpenAI" in html


def test_openai_form_asks_for_optional_base_url_organization_and_project(
    organization, owner_client
):
    tags = Tags(owner_client.get(add_url(organization, "openai")).content.decode())

    for name in ("config_base_url", "config_organization", "config_project"):
        [field] = tags.named(name)
        assert "required" not in field
    assert not tags.named("config_endpoint")
    assert not tags.named("config_deployment")


@pytest.mark.parametrize("query", ["", "?provider=", "?provider=nope", "?provider=%00%3Cb%3E"])
def test_add_without_a_known_provider_shows_the_provider_chooser(organization, owner_client, query):
    response = owner_client.get(url("keys:add", organization) + query)

    assert response.status_code == 200
    assert "keyvault/keys/choose_provider.html" in [t.name for t in response.templates]
    tags = Tags(response.content.decode())
    assert [attrs for tag, attrs in tags.tags if tag == "select" and attrs["name"] == "provider"]
    assert not tags.named("secret")


def test_posting_a_key_for_an_unknown_provider_writes_nothing(organization, owner_client):
    before = snapshot()

    response = post_key(owner_client, organization, provider="nope")

    assert response.status_code == 200
    assert "keyvault/keys/choose_provider.html" in [t.name for t in response.templates]
    assert snapshot() == before


# --- Errors beside their fields, nothing written ----------------------------------------------


@pytest.fixture
def default_prod_key(organization, owner):
    return ProviderKeyFactory(
        organization=organization, name="Prod", is_default=True, created_by=owner
    )


ERROR_CASES = {
    "invalid endpoint": (
        "azure_openai",
        {**AZURE, "config_endpoint": "not a url"},
        "config_endpoint",
        "Endpoint must be an https:// URL.",
    ),
    "missing deployment": (
        "azure_openai",
        {**AZURE, "config_deployment": ""},
        "config_deployment",
        "This field is required.",
    ),
    "malformed api version": (
        "azure_openai",
        {**AZURE, "config_api_version": "June 2024"},
        "config_api_version",
        "API version does not look right",
    ),
    "duplicate name, other case": (
        "openai",
        {"name": "PROD"},
        "name",
        "already has an OpenAI key named",
    ),
    "second default": (
        "openai",
        {"name": "Staging", "is_default": "on"},
        "is_default",
        "is already the default OpenAI key",
    ),
    "empty name": ("openai", {"name": ""}, "name", "This field is required."),
}


@pytest.mark.parametrize(
    ("provider", "fields", "field", "message"), ERROR_CASES.values(), ids=ERROR_CASES.keys()
)
def test_add_form_errors_show_beside_their_field_and_nothing_is_written(
    organization, owner_client, default_prod_key, provider, fields, field, message
):
    before = snapshot()

    response = post_key(owner_client, organization, provider=provider, **fields)

    assert response.status_code == 200
    assert field in response.context["form"].errors
    block = field_block(response.content.decode(), field)
    assert "has-error" in block.split(">", 1)[0]
    assert message in block.replace("&#x27;", "'")
    assert snapshot() == before


def test_the_typed_secret_is_not_rendered_back_when_the_form_has_errors(
    organization, owner_client, default_prod_key
):
    response = post_key(owner_client, organization, name="Prod")

    html = response.content.decode()
    [secret] = Tags(html).named("secret")
    assert secret["type"] == "password"
    assert "value" not in secret
    assert SECRET not in html
    assert SECRET[8:30] not in html
    # …and the page says so, instead of leaving an empty box to be noticed after the next try.
    assert "the secret you entered was not kept: paste it again" in html


def test_a_form_without_errors_asks_for_nothing_again(organization, owner_client):
    response = owner_client.get(add_url(organization))
    assert "paste it again" not in response.content.decode()


def test_a_service_account_key_typed_into_a_form_with_errors_is_not_rendered_back(
    organization, owner_client
):
    """Vertex secrets are multi-line JSON, so their input is a textarea: it must not echo the
    private key when the form comes back with an error either."""
    private_key = "-----BEGIN PRIVATE KEY-----VertexPrivateKeyMaterialZq81xW-----END"
    secret = (
        '{"type": "service_account", "private_key_id": "abcdef0123456789", '
        f'"private_key": "{private_key}", "client_email": "svc@proj.iam.gserviceaccount.com"}}'
    )
    before = snapshot()

    response = post_key(
        owner_client,
        organization,
        provider="vertex",
        secret=secret,
        config_project="my-project",
        config_location="",  # required: the form comes back with an error
    )

    assert response.status_code == 200
    assert snapshot() == before
    html = response.content.decode()
    assert "VertexPrivateKeyMaterialZq81xW" not in html


# --- The list ---------------------------------------------------------------------------------


@pytest.fixture
def listed(organization, owner, member_of):
    """Three keys in two providers: a default OpenAI key added by a member and used an hour
    ago, a disabled, rotated OpenAI key, and an Anthropic key nobody used."""
    member = member_of(organization, roles.MEMBER.id).user
    prod = ProviderKeyFactory(
        organization=organization,
        name="prod-gateway",
        secret="sk-proj-ListedProdSecretAbCdEfGhIjKlMnOp1111",
        is_default=True,
        created_by=member,
    )
    ProviderKey.objects.filter(pk=prod.pk).update(
        last_used_at=timezone.now() - timedelta(hours=1, minutes=5)
    )
    batch = ProviderKeyFactory(
        organization=organization,
        name="batch-jobs",
        secret="sk-proj-ListedBatchSecretAbCdEfGhIjKlMnOp2222",
        enabled=False,
    )
    batch = services.provider_key_rotate(
        key=batch, actor=OPERATOR, secret="sk-proj-ListedBatchRotatedAbCdEfGhIjKlMnOp3333"
    )
    claude = ProviderKeyFactory(
        organization=organization,
        provider="anthropic",
        name="claude-prod",
        secret="sk-ant-ListedClaudeSecretAbCdEfGhIjKlMnOp4444",
    )
    return {"prod": prod, "batch": batch, "claude": claude, "member": member}


def groups(html: str) -> dict[str, list[str]]:
    """Key names under each provider heading, in page order."""
    sections = re.findall(
        r'<section class="provider-group">\s*<h2>(.*?) <span.*?</section>', html, flags=re.S
    )
    result = {}
    for section in re.split(r'(?=<section class="provider-group">)', html)[1:]:
        heading = re.search(r"<h2>(.*?) <span", section).group(1)
        result[heading] = list(rows(section))
    assert len(result) == len(sections)
    return result


def test_the_list_shows_name_hint_default_state_version_creator_and_last_use(
    organization, owner_client, listed
):
    html = owner_client.get(url("keys:list", organization)).content.decode()

    by_name = rows(html)
    prod, batch, claude = by_name["prod-gateway"], by_name["batch-jobs"], by_name["claude-prod"]
    assert "sk-proj-…1111" in prod
    assert "sk-proj-…3333" in batch
    assert "sk-ant-…4444" in claude
    assert '<span class="badge default">default</span>' in prod
    assert "default</span>" not in batch + claude
    assert '<span class="badge ok">enabled</span>' in prod
    assert '<span class="badge off">disabled</span>' in batch
    assert 'class="disabled"' in batch
    assert "v1" in prod and "v2" in batch
    assert listed["member"].email in prod
    assert "—" in batch  # added by the operator, not a user
    assert re.search(r"<time datetime=\"[^\"]+\"[^>]*>1\xa0hour, 5\xa0minutes ago</time>", prod)
    assert "never" in claude and "never" in batch


def test_the_list_groups_keys_by_provider(organization, owner_client, listed):
    html = owner_client.get(url("keys:list", organization)).content.decode()

    # Each group in pool order: the default first, then by priority, then by name.
    assert groups(html) == {
        "Anthropic": ["claude-prod"],
        "OpenAI": ["prod-gateway", "batch-jobs"],
    }


def test_the_list_never_shows_a_secret(organization, owner_client, listed):
    html = owner_client.get(url("keys:list", organization)).content.decode()

    for fragment in ("ListedProdSecret", "ListedBatch", "ListedClaudeSecret"):
        assert fragment not in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?provider=anthropic", {"Anthropic": ["claude-prod"]}),
        ("?provider=openai", {"OpenAI": ["prod-gateway", "batch-jobs"]}),
        ("?q=PROD", {"Anthropic": ["claude-prod"], "OpenAI": ["prod-gateway"]}),
        ("?provider=openai&q=prod", {"OpenAI": ["prod-gateway"]}),
        (
            "?provider=nope",
            {"Anthropic": ["claude-prod"], "OpenAI": ["prod-gateway", "batch-jobs"]},
        ),
    ],
)
def test_the_list_filters_by_provider_and_by_name(
    organization, owner_client, listed, query, expected
):
    response = owner_client.get(url("keys:list", organization) + query)

    assert response.status_code == 200
    assert groups(response.content.decode()) == expected


def test_a_filter_matching_nothing_says_so(organization, owner_client, listed):
    html = owner_client.get(url("keys:list", organization) + "?q=nothing-like-this").content

    assert "No key matches this filter." in html.decode()
    assert groups(html.decode()) == {}


def test_the_provider_filter_offers_only_providers_in_use(organization, owner_client, listed):
    html = owner_client.get(url("keys:list", organization)).content.decode()

    select = re.search(r'<select id="filter-provider".*?</select>', html, flags=re.S).group(0)
    assert re.findall(r'<option value="([^"]*)"', select) == ["", "openai", "anthropic"]


def test_an_empty_organization_explains_keys_and_offers_to_add_one(organization, owner_client):
    html = owner_client.get(url("keys:list", organization)).content.decode()

    assert "No provider keys yet" in html
    assert "Add your first key" in html
    assert f'href="{url("keys:add", organization)}"' in html


def test_a_viewer_of_an_empty_organization_gets_no_add_button(organization, member_of, signed_in):
    viewer = member_of(organization, roles.VIEWER.id).user

    html = signed_in(viewer).get(url("keys:list", organization)).content.decode()

    assert "No provider keys yet" in html
    assert "Your role can see keys but not add them" in html
    assert url("keys:add", organization) not in html


# --- Edit, rotate, delete --------------------------------------------------------------------


@pytest.fixture
def key(organization, owner):
    return ProviderKeyFactory(
        organization=organization,
        name="Prod",
        secret="sk-proj-OriginalS3cretAbCdEfGhIjKlMnOpQr0001",
        created_by=owner,
    )


def test_edit_form_shows_the_current_values_and_no_secret_field(organization, owner_client, key):
    ProviderKey.objects.filter(pk=key.pk).update(config={"project": "proj_abc"})

    response = owner_client.get(url("keys:edit", organization, pk=key.pk))

    assert response.status_code == 200
    tags = Tags(response.content.decode())
    assert tags.named("name")[0]["value"] == "Prod"
    assert tags.named("config_project")[0]["value"] == "proj_abc"
    assert "checked" in tags.named("enabled")[0]
    assert "checked" not in tags.named("is_default")[0]
    # Only to confirm a change of the base URL: optional, and never filled in.
    (secret_box,) = tags.named("secret")
    assert secret_box["type"] == "password" and not secret_box.get("value")
    assert "required" not in secret_box


def test_edit_changes_name_config_default_and_enabled(organization, owner, owner_client, key):
    response = owner_client.post(
        url("keys:edit", organization, pk=key.pk),
        {
            "name": "Production",
            "config_organization": "org-acme",
            "is_default": "on",
        },
        REMOTE_ADDR=CLIENT_IP,
    )

    assert response.status_code == 302
    assert response["Location"] == url("keys:list", organization)
    key.refresh_from_db()
    assert key.name == "Production"
    assert key.config == {"organization": "org-acme"}
    assert (key.is_default, key.enabled, key.version) == (True, False, 1)
    event = AuditEvent.objects.get(action=AuditAction.KEY_UPDATED)
    assert (event.actor_user, event.ip_address) == (owner, CLIENT_IP)
    assert set(event.metadata["changes"]) == {"name", "config", "is_default", "enabled"}
    assert "Saved Production." in owner_client.get(response["Location"]).content.decode()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"name": "Other", "config_base_url": "ftp://nope"}, "config_base_url", "https:// URL"),
        ({"name": "prod"}, "name", "already has an OpenAI key named"),
        ({"name": "Other", "is_default": "on"}, "is_default", "is already the default"),
    ],
    ids=["bad config", "duplicate name", "second default"],
)
def test_edit_errors_show_beside_the_field_and_change_nothing(
    organization, owner_client, key, fields, field, message
):
    services.provider_key_update(key=key, actor=OPERATOR, is_default=True)
    other = ProviderKeyFactory(organization=organization, name="Other")
    before = snapshot()

    response = owner_client.post(
        url("keys:edit", organization, pk=other.pk), {"enabled": "on", **fields}
    )

    assert response.status_code == 200
    assert field in response.context["form"].errors
    block = field_block(response.content.decode(), field)
    assert message in block.replace("&#x27;", "'")
    assert snapshot() == before
    other.refresh_from_db()
    assert (other.name, other.config, other.is_default) == ("Other", {}, False)


def test_rotating_bumps_the_version_and_changes_the_hint(organization, owner, owner_client, key):
    page = owner_client.get(url("keys:rotate", organization, pk=key.pk))
    assert Tags(page.content.decode()).named("secret")[0]["type"] == "password"

    response = owner_client.post(
        url("keys:rotate", organization, pk=key.pk), {"secret": NEW_SECRET}, REMOTE_ADDR=CLIENT_IP
    )

    assert response.status_code == 302
    rotated = ProviderKey.objects.get(pk=key.pk)
    assert rotated.version == 2
    assert rotated.secret_hint == "sk-proj-…7b3c" != key.secret_hint
    assert services.provider_key_reveal(key=rotated, actor=OPERATOR) == NEW_SECRET
    event = AuditEvent.objects.get(action=AuditAction.KEY_ROTATED)
    assert (event.actor_user, event.ip_address) == (owner, CLIENT_IP)
    html = owner_client.get(response["Location"]).content.decode()
    assert "Rotated Prod: now version 2 (sk-proj-…7b3c)." in html
    assert "v2" in rows(html)["Prod"]


def test_rotating_to_a_blank_secret_shows_the_error_and_keeps_the_key(
    organization, owner_client, key
):
    before = snapshot()

    response = owner_client.post(url("keys:rotate", organization, pk=key.pk), {"secret": "   "})

    assert response.status_code == 200
    assert "The secret cannot be empty." in field_block(response.content.decode(), "secret")
    assert snapshot() == before
    assert ProviderKey.objects.get(pk=key.pk).version == 1


def test_the_delete_page_warns_that_proxies_will_stop_receiving_the_key(
    organization, owner_client, key
):
    response = owner_client.get(url("keys:delete", organization, pk=key.pk))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Proxies will stop receiving this key" in html
    assert key.secret_hint in html
    assert ProviderKey.objects.filter(pk=key.pk).exists()


def test_deleting_a_key_removes_it_and_records_who(organization, owner, owner_client, key):
    response = owner_client.post(url("keys:delete", organization, pk=key.pk), REMOTE_ADDR=CLIENT_IP)

    assert response.status_code == 302
    assert response["Location"] == url("keys:list", organization)
    assert not ProviderKey.objects.filter(pk=key.pk).exists()
    event = AuditEvent.objects.get(action=AuditAction.KEY_DELETED)
    assert (event.actor_user, event.ip_address) == (owner, CLIENT_IP)
    html = owner_client.get(response["Location"]).content.decode()
    assert "Deleted Prod. Proxies no longer receive it." in html
