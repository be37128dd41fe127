"""Bad input in the admin is answered with form errors, a warning or 400, never a server error:
with a cold content-type cache, with NUL in a query string, with JSON the database cannot store
or Python cannot parse, and with a tampered selection."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType

from audit.models import AuditEvent
from keyvault.models import ProviderKey, ProxyToken
from organizations.models import Organization
from tests.helpers import key_row, messages_of, snapshot
from tests.test_admin_writes import (
    KEYS,
    ORGS,
    TOKENS,
    add_key,
    change,
    form_errors,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def a(tenants):
    return tenants.a


@pytest.fixture
def admin(a, signed_in):
    return signed_in(a.admin)


@pytest.fixture
def cold_cache():
    """The content-type cache as a fresh worker process has it: empty, so the admin's first
    lookup of a model's content type queries the database."""
    ContentType.objects.clear_cache()
    yield
    ContentType.objects.clear_cache()


# --- A refused form with a cold content-type cache ------------------------------------------


def test_refused_add_is_a_form_error_with_a_cold_cache(a, admin, cold_cache):
    before = snapshot()

    errors = form_errors(add_key(admin, a.org, name=""))

    assert "name" in errors
    assert snapshot() == before


def test_refused_change_is_a_form_error_with_a_cold_cache(a, admin, form_data):
    before, events = key_row(a.key), AuditEvent.objects.count()
    url = f"{KEYS}{a.key.pk}/change/"
    data = form_data(admin.get(url))
    # A rename the services accept and a secret they refuse: both must be undone.
    data.update(name="Renamed", new_secret="   ")
    ContentType.objects.clear_cache()

    errors = form_errors(admin.post(url, data))

    assert "new_secret" in errors
    assert key_row(a.key) == before
    assert AuditEvent.objects.count() == events


def test_refused_token_and_rename_are_form_errors_with_a_cold_cache(a, signed_in, form_data):
    owner = signed_in(a.owner)
    ContentType.objects.clear_cache()
    token_errors = form_errors(
        owner.post(
            f"{TOKENS}add/",
            {"organization": str(a.org.pk), "name": a.token.name, "token_scopes": ["keys:read"]},
        )
    )
    data = form_data(owner.get(f"{ORGS}{a.org.pk}/change/"))
    ContentType.objects.clear_cache()
    rename_errors = form_errors(owner.post(f"{ORGS}{a.org.pk}/change/", {**data, "name": "  "}))

    assert "name" in token_errors
    assert "name" in rename_errors
    assert ProxyToken.objects.filter(organization=a.org).count() == 1
    assert Organization.objects.get(pk=a.org.pk).name == "Alpha Org"


def test_accepted_add_with_a_cold_cache_writes_its_history(a, admin, cold_cache):
    response = add_key(admin, a.org)

    assert response.status_code == 302
    key = ProviderKey.objects.get(organization=a.org, name="Admin Key")
    assert LogEntry.objects.filter(object_id=str(key.pk)).exists()


# --- NUL in a query string ----------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        f"{KEYS}?kek_id=%00",
        f"{KEYS}?provider__exact=%00",
        f"{KEYS}?name=a%00b",
        f"{KEYS}?q=%00",
        f"{KEYS}?%00=1",
        f"{ORGS}?q=%00",
        "/admin/audit/auditevent/?action__exact=%00",
        "/admin/autocomplete/?app_label=keyvault&model_name=providerkey"
        "&field_name=organization&term=%00",
        f"{KEYS}add/?_changelist_filters=x&organization=%00",
    ],
)
def test_nul_in_a_query_string_is_a_bad_request(admin, query):
    assert admin.get(query).status_code == 400


def test_the_same_filters_without_nul_still_work(a, admin):
    response = admin.get(KEYS, {"provider__exact": "openai", "q": "alpha"})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [a.key]


@pytest.mark.parametrize(
    "query",
    [
        f"{KEYS}?name__regex=(",
        f"{KEYS}?config__contains=x",
        f"{KEYS}?secret_hint__startswith=sk",
        "/admin/audit/auditevent/?action__regex=(",
        "/admin/audit/auditevent/?metadata__email__contains=bravo",
        "/admin/keyvault/proxytoken/?digest__startswith=a",
        "/admin/organizations/invitation/?digest__startswith=a",
        f"{KEYS}?organization__name__startswith=B",
    ],
)
def test_a_field_lookup_no_filter_offers_is_a_bad_request(admin, query):
    # Regexes and JSON paths failed in the database as server errors, and a prefix of a stored
    # digest could be searched for one character at a time.
    assert admin.get(query).status_code == 400


@pytest.mark.parametrize(
    "query",
    ["provider__exact=openai", "enabled__exact=1", "is_default__exact=0", "kek_id__exact=x"],
)
def test_the_sidebar_filters_still_work(a, admin, query):
    assert admin.get(f"{KEYS}?{query}").status_code == 200


# --- Settings the database cannot store -------------------------------------------------------


def test_a_setting_holding_nul_is_a_form_error(a, admin, form_data):
    before = snapshot()
    value = "https://llm.example.com/\x00"
    add = add_key(admin, a.org, config_base_url=value)
    url = f"{KEYS}{a.key.pk}/change/"
    key_before = key_row(a.key)
    edit = change(admin, url, form_data, config_base_url=value)

    for response in (add, edit):
        assert "config_base_url" in form_errors(response)
    assert snapshot() == before
    assert key_row(a.key) == key_before


# --- A tampered selection for an action -----------------------------------------------------


@pytest.mark.parametrize("selected", ["not-a-uuid", "\x00", "1"])
def test_action_on_ids_that_are_not_ids_changes_nothing(a, admin, selected):
    key_before = key_row(a.key)
    for url, action, target in ((KEYS, "disable_keys", a.key), (TOKENS, "revoke_tokens", a.token)):
        response = admin.post(
            url, {"action": action, ACTION_CHECKBOX_NAME: [str(target.pk), selected]}
        )

        assert response.status_code == 302
        assert "The selection names items that do not exist." in messages_of(admin)[-1]
    assert key_row(a.key) == key_before
    assert ProxyToken.objects.get(pk=a.token.pk).revoked_at is None
