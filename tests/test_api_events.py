"""The event feed and the snapshot over the API: shapes, order, paging, bad cursors, expiry,
other organizations, and what they never show."""

import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from keyvault import events, services
from keyvault.models import EventFeed, KeyEvent, KeyUsage
from keyvault.usage import recorder
from organizations.access import Access
from tests.factories import OrganizationFactory, ProviderKeyFactory
from tests.helpers import bearer

SYSTEM = Access.operator("tests")
EVENT_FIELDS = {
    "id",
    "type",
    "key_id",
    "provider",
    "name",
    "version",
    "is_default",
    "enabled",
    "occurred_at",
}


@pytest.fixture
def token(make_token):
    return make_token("keys:read", "keys:secret")


@pytest.fixture
def get(client, token):
    def call(path, who=None, **extra):
        return client.get(path, **bearer(who or token), **extra)

    return call


def feed(get, after=0, who=None, **params):
    query = "&".join(f"{k}={v}" for k, v in {"after": after, **params}.items())
    response = get(f"/api/v1/events?{query}", who)
    assert response.status_code == 200, response.content
    return response.json()


# --- Shapes ----------------------------------------------------------------------------------


def test_an_event_has_exactly_the_documented_fields(get, organization):
    key = ProviderKeyFactory(organization=organization, provider="openai", name="Main")
    page = feed(get)
    assert page["cursor"] == 1
    (event,) = page["events"]
    assert set(event) == EVENT_FIELDS
    assert event["id"] == 1
    assert event["type"] == "key.created"
    assert event["key_id"] == str(key.pk)
    assert (event["provider"], event["name"], event["version"]) == ("openai", "Main", 1)
    assert (event["is_default"], event["enabled"]) == (False, True)
    assert timezone.datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))


def test_events_come_in_order_and_from_after_the_cursor(get, organization):
    key = ProviderKeyFactory(organization=organization)
    services.provider_key_update(key=key, actor=SYSTEM, name="Renamed")
    services.provider_key_update(key=key, actor=SYSTEM, enabled=False)
    services.provider_key_delete(key=key, actor=SYSTEM)
    page = feed(get)
    assert [e["id"] for e in page["events"]] == [1, 2, 3, 4]
    assert [e["type"] for e in page["events"]] == [
        "key.created",
        "key.updated",
        "key.disabled",
        "key.deleted",
    ]
    assert page["cursor"] == 4
    later = feed(get, after=2)
    assert [e["id"] for e in later["events"]] == [3, 4]
    assert feed(get, after=4) == {"events": [], "cursor": 4}


def test_an_empty_feed_is_at_cursor_zero(get):
    assert feed(get) == {"events": [], "cursor": 0}


def test_a_page_holds_at_most_500_events(get, organization, monkeypatch):
    key = ProviderKeyFactory(organization=organization)
    for n in range(501):
        services.provider_key_update(key=key, actor=SYSTEM, name=f"Name {n}")
    first = feed(get)
    assert len(first["events"]) == 500
    assert first["cursor"] == 500
    second = feed(get, after=first["cursor"])
    assert [e["id"] for e in second["events"]] == [501, 502]
    assert second["cursor"] == 502


def test_the_feed_is_not_cached(get):
    assert get("/api/v1/events?after=0")["Cache-Control"] == "no-store"


# --- Bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "",
        "after=",
        "after=abc",
        "after=1.5",
        "after=-1",
        "after=%201",
        "after=1&after=2",
        "after=" + "9" * 30,
    ],
    ids=["missing", "empty", "text", "decimal", "negative", "space", "twice", "huge"],
)
def test_a_bad_cursor_is_400_naming_after(get, query):
    response = get(f"/api/v1/events?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "Invalid input."
    assert list(body["errors"]) == ["after"]


@pytest.mark.parametrize("wait", ["31", "-1", "abc", "2.5", "1e3"])
def test_a_wait_out_of_range_is_400_naming_wait(get, wait):
    response = get(f"/api/v1/events?after=0&wait={wait}")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["wait"]


def test_a_cursor_ahead_of_the_feed_is_expired(get, organization):
    ProviderKeyFactory(organization=organization)
    response = get("/api/v1/events?after=2")
    assert response.status_code == 410
    assert response.json()["code"] == "cursor_expired"


# --- Retention -------------------------------------------------------------------------------


def _age_events(organization, *, days):
    KeyEvent.objects.filter(organization=organization).update(
        occurred_at=timezone.now() - timedelta(days=days)
    )


def test_a_cursor_older_than_retention_is_410_and_a_newer_one_is_not(get, organization):
    key = ProviderKeyFactory(organization=organization)
    services.provider_key_update(key=key, actor=SYSTEM, name="Two")
    _age_events(organization, days=8)
    services.provider_key_update(key=key, actor=SYSTEM, name="Three")
    assert events.prune_events() == 2
    for after in (0, 1):
        response = get(f"/api/v1/events?after={after}")
        assert response.status_code == 410
        body = response.json()
        assert body["code"] == "cursor_expired"
        assert body["detail"]
    # Exactly at the watermark nothing was missed.
    page = feed(get, after=2)
    assert [e["id"] for e in page["events"]] == [3]


def test_events_younger_than_retention_are_kept(organization):
    ProviderKeyFactory(organization=organization)
    _age_events(organization, days=6)
    assert events.prune_events() == 0
    assert KeyEvent.objects.filter(organization=organization).count() == 1


def test_prune_events_command(organization, capsys, settings):
    ProviderKeyFactory(organization=organization)
    _age_events(organization, days=30)
    call_command("prune_events")
    assert "1 event" in capsys.readouterr().out
    assert EventFeed.objects.get(pk=organization.pk).pruned_through == 1


def test_prune_events_refuses_a_retention_below_seven_days(organization, settings):
    settings.KEYVAULT_EVENTS_RETENTION_DAYS = 3
    ProviderKeyFactory(organization=organization)
    _age_events(organization, days=5)
    with pytest.raises(ValueError, match="at least 7 days"):
        events.prune_events()
    assert KeyEvent.objects.count() == 1


def test_prune_events_command_with_a_short_retention_fails_with_one_line(organization, settings):
    from django.core.management import CommandError

    settings.KEYVAULT_EVENTS_RETENTION_DAYS = 2
    with pytest.raises(CommandError, match=r"^KEYVAULT_EVENTS_RETENTION_DAYS is 2; events"):
        call_command("prune_events")


def test_pruning_one_organization_leaves_the_others_cursor(get, organization):
    other = OrganizationFactory()
    ProviderKeyFactory(organization=other)
    _age_events(other, days=10)
    ProviderKeyFactory(organization=organization)
    events.prune_events()
    assert feed(get)["cursor"] == 1


# --- Other organizations ---------------------------------------------------------------------


def test_another_organizations_events_are_invisible(get, organization, make_token):
    mine = ProviderKeyFactory(organization=organization, name="Mine")
    other = OrganizationFactory()
    theirs = ProviderKeyFactory(organization=other, name="Theirs", secret="sk-proj-theirs-0001")
    services.provider_key_update(key=theirs, actor=SYSTEM, enabled=False)
    page = feed(get)
    assert [e["key_id"] for e in page["events"]] == [str(mine.pk)]
    assert "Theirs" not in str(page)


def test_cursor_values_say_nothing_about_other_organizations(get, organization, make_token):
    """Each organization numbers its own events: another's activity leaves no gap here, and
    the same history gives the same cursors whatever else happened."""
    other = OrganizationFactory()
    outsider = make_token("keys:read", "keys:secret", organization=other)
    theirs = ProviderKeyFactory(organization=other)
    for n in range(5):
        services.provider_key_update(key=theirs, actor=SYSTEM, name=f"Busy {n}")
    ProviderKeyFactory(organization=organization)
    ProviderKeyFactory(organization=other)
    ProviderKeyFactory(organization=organization)
    assert [e["id"] for e in feed(get)["events"]] == [1, 2]
    assert get("/api/v1/snapshot").json()["cursor"] == 2
    assert feed(get, who=outsider)["cursor"] == 7
    # A cursor of theirs is meaningless here: ahead of this feed, it says only that.
    assert get("/api/v1/events?after=7").status_code == 410


# --- The snapshot ----------------------------------------------------------------------------


def test_the_snapshot_holds_every_enabled_key_with_its_secret(get, organization):
    one = ProviderKeyFactory(organization=organization, provider="openai", secret="sk-proj-one-1")
    two = ProviderKeyFactory(
        organization=organization, provider="anthropic", secret="sk-ant-api03-two-2"
    )
    off = ProviderKeyFactory(organization=organization, provider="openai", enabled=False)
    response = get("/api/v1/snapshot")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["cursor"] == 3
    assert body["unavailable"] == []
    by_id = {item["id"]: item for item in body["keys"]}
    assert set(by_id) == {str(one.pk), str(two.pk)}
    assert str(off.pk) not in by_id
    assert by_id[str(one.pk)]["secret"] == "sk-proj-one-1"
    assert by_id[str(two.pk)]["secret"] == "sk-ant-api03-two-2"
    # The secret endpoint's shape: its metadata plus the secret.
    secret = get(f"/api/v1/keys/{one.pk}/secret").json()
    assert by_id[str(one.pk)] == secret


def test_the_snapshot_filters_by_provider(get, organization):
    ProviderKeyFactory(organization=organization, provider="openai")
    anthropic = ProviderKeyFactory(
        organization=organization, provider="anthropic", secret="sk-ant-api03-x"
    )
    body = get("/api/v1/snapshot?provider=anthropic").json()
    assert [k["id"] for k in body["keys"]] == [str(anthropic.pk)]
    assert body["cursor"] == 2


def test_the_snapshot_refuses_an_unknown_provider(get):
    response = get("/api/v1/snapshot?provider=nope")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["provider"]


def test_the_snapshot_of_an_organization_without_keys(get):
    assert get("/api/v1/snapshot").json() == {"cursor": 0, "keys": [], "unavailable": []}


def test_another_organizations_keys_are_not_in_the_snapshot(get, organization):
    ProviderKeyFactory(organization=OrganizationFactory(), secret="sk-proj-theirs-secret")
    body = get("/api/v1/snapshot").json()
    assert body == {"cursor": 0, "keys": [], "unavailable": []}


def test_each_secret_in_a_snapshot_is_accounted_as_a_retrieval(get, organization, token):
    one = ProviderKeyFactory(organization=organization)
    two = ProviderKeyFactory(organization=organization)
    get("/api/v1/snapshot")
    recorder.flush()
    counts = dict(KeyUsage.objects.filter(token=token).values_list("key_id", "count"))
    assert counts == {one.pk: 1, two.pk: 1}


def test_a_key_that_fails_its_check_is_left_out_of_the_snapshot(get, organization, tamper):
    good = ProviderKeyFactory(organization=organization)
    bad = ProviderKeyFactory(organization=organization)
    tamper(bad)
    body = get("/api/v1/snapshot").json()
    assert [k["id"] for k in body["keys"]] == [str(good.pk)]
    assert body["unavailable"] == [{"id": str(bad.pk), "code": "key_integrity_error"}]


# --- Scopes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "scope", "other"),
    [
        ("/api/v1/events?after=0", "keys:read", "keys:secret"),
        ("/api/v1/snapshot", "keys:secret", "keys:read"),
    ],
)
def test_each_endpoint_needs_its_scope(get, make_token, path, scope, other):
    assert get(path, who=make_token(scope)).status_code == 200
    response = get(path, who=make_token(other, "keys:write"))
    assert response.status_code == 403
    assert scope in response.json()["detail"]


def test_a_revoked_token_reads_no_feed(get, make_token):
    token = make_token("keys:read")
    services.proxy_token_revoke(token=token, actor=SYSTEM)
    assert get("/api/v1/events?after=0", who=token).status_code == 401


def test_unknown_key_ids_are_not_needed_to_read_the_feed(get, organization):
    # key_id is a plain value: a deleted key's event still names it.
    key = ProviderKeyFactory(organization=organization)
    key_id = key.pk
    services.provider_key_delete(key=key, actor=SYSTEM)
    deleted = feed(get)["events"][-1]
    assert deleted["type"] == "key.deleted"
    assert uuid.UUID(deleted["key_id"]) == key_id
