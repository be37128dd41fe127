"""Key pools and health: the pool's order, `GET pool`, `resolve?fallback=true` through every
health state, proxies' reports (`POST keys/{id}/report`) and what they change, count and audit.
(Connection tests: tests/test_probes.py; concurrent reports: tests/test_key_health_threads.py.)"""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from audit import AuditAction
from audit.models import AuditEvent
from keyvault import health, selectors, services
from keyvault.models import KeyReportCount, ProviderKey
from organizations.access import Access
from tests.factories import ProviderKeyFactory
from tests.helpers import bearer, key_row, snapshot

OPERATOR = Access.operator("tests")


@pytest.fixture
def pool(organization):
    """Three enabled OpenAI keys and a disabled one: the default "zeta" (priority 500), "beta"
    (10), "alpha" (10, sorts by name before beta), "gamma" (50), and disabled "off" (0)."""
    make = lambda name, **kw: ProviderKeyFactory(organization=organization, name=name, **kw)  # noqa: E731
    return {
        "zeta": make("zeta", is_default=True, priority=500),
        "beta": make("beta", priority=10),
        "alpha": make("alpha", priority=10),
        "gamma": make("gamma", priority=50),
        "off": make("off", priority=0, enabled=False),
    }


def names(keys) -> list[str]:
    return [key.name for key in keys]


def fresh(key) -> ProviderKey:
    return ProviderKey.objects.get(pk=key.pk)


def report(key, status, retry_after=None, **kwargs):
    return services.provider_key_report(
        key=fresh(key), actor=OPERATOR, status=status, retry_after=retry_after, **kwargs
    )


def set_health(key, state: str) -> None:
    """Put `key` in `state` through reports, as a proxy would."""
    if state == health.FAILING:
        report(key, 401)
    elif state == health.COOLING:
        report(key, 429, retry_after=600)
    elif state == health.OK:
        report(key, 200)


# --- The pool's order ---------------------------------------------------------------------------


def test_the_pool_is_the_default_then_priority_then_name_and_only_enabled_keys(pool, organization):
    found = selectors.provider_key_pool(organization_id=organization.pk, provider="openai")
    assert names(found) == ["zeta", "alpha", "beta", "gamma"]


def test_the_pool_api_answers_available_keys_in_pool_order_with_secrets(
    api_client, pool, organization, make_token
):
    token = make_token("keys:secret")
    report(pool["alpha"], 401)
    response = api_client.get("/api/v1/pool?provider=openai", **bearer(token))
    assert response.status_code == 200
    body = response.json()
    assert body["provider"] == "openai"
    assert [key["name"] for key in body["keys"]] == ["zeta", "beta", "gamma"]
    assert body["keys"][0]["secret"] == services.provider_key_reveal(
        key=fresh(pool["zeta"]), actor=OPERATOR
    )
    assert {key["health"] for key in body["keys"]} <= {"ok", "unchecked"}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("scopes", "status"), [(["keys:read"], 403), (["keys:write"], 403)])
def test_the_pool_needs_keys_secret(api_client, pool, make_token, scopes, status):
    response = api_client.get("/api/v1/pool?provider=openai", **bearer(make_token(*scopes)))
    assert response.status_code == status


@pytest.mark.parametrize("query", ["", "?provider=", "?provider=nope"])
def test_the_pool_needs_a_known_provider(api_client, pool, make_token, query):
    response = api_client.get(f"/api/v1/pool{query}", **bearer(make_token("keys:secret")))
    assert response.status_code == 400
    assert "provider" in response.json()["errors"]


def test_another_organizations_pool_is_not_shown(api_client, pool, make_token, other_organization):
    token = make_token("keys:secret", organization=other_organization)
    response = api_client.get("/api/v1/pool?provider=openai", **bearer(token))
    assert response.status_code == 200
    assert response.json()["keys"] == []


# --- resolve?fallback=true through every health state ------------------------------------------


STATES = [health.UNCHECKED, health.OK, health.COOLING, health.FAILING]


@pytest.mark.parametrize("default_state", STATES)
@pytest.mark.parametrize("second_state", STATES)
def test_fallback_skips_failing_and_cooling_keys_in_pool_order(
    api_client, pool, make_token, default_state, second_state
):
    set_health(pool["zeta"], default_state)
    set_health(pool["alpha"], second_state)
    unavailable = {health.COOLING, health.FAILING}
    expected = next(
        name
        for name, state in (("zeta", default_state), ("alpha", second_state), ("beta", "ok"))
        if state not in unavailable
    )
    response = api_client.get(
        "/api/v1/resolve?provider=openai&fallback=true", **bearer(make_token("keys:secret"))
    )
    assert response.status_code == 200
    assert response.json()["name"] == expected
    pool_names = [
        k["name"]
        for k in api_client.get(
            "/api/v1/pool?provider=openai", **bearer(make_token("keys:secret"))
        ).json()["keys"]
    ]
    assert pool_names[0] == expected
    assert "off" not in pool_names


@pytest.mark.parametrize("default_state", STATES)
def test_without_fallback_resolve_answers_the_default_whatever_its_health(
    api_client, pool, make_token, default_state
):
    set_health(pool["zeta"], default_state)
    response = api_client.get(
        "/api/v1/resolve?provider=openai", **bearer(make_token("keys:secret"))
    )
    assert response.status_code == 200
    assert response.json()["name"] == "zeta"
    assert response.json()["health"] == default_state


def test_fallback_false_is_resolve_as_before(api_client, pool, make_token):
    set_health(pool["zeta"], health.FAILING)
    response = api_client.get(
        "/api/v1/resolve?provider=openai&fallback=false", **bearer(make_token("keys:secret"))
    )
    assert response.json()["name"] == "zeta"


def test_no_available_key_is_409(api_client, pool, make_token):
    for name in ("zeta", "alpha", "beta"):
        set_health(pool[name], health.FAILING)
    set_health(pool["gamma"], health.COOLING)
    response = api_client.get(
        "/api/v1/resolve?provider=openai&fallback=true", **bearer(make_token("keys:secret"))
    )
    assert response.status_code == 409
    assert response.json()["code"] == "no_available_key"
    pool_body = api_client.get("/api/v1/pool?provider=openai", **bearer(make_token("keys:secret")))
    assert pool_body.json()["keys"] == []


def test_a_provider_without_keys_has_no_available_key(api_client, make_token, organization):
    response = api_client.get(
        "/api/v1/resolve?provider=anthropic&fallback=true", **bearer(make_token("keys:secret"))
    )
    assert response.status_code == 409
    assert response.json()["code"] == "no_available_key"


@pytest.mark.parametrize("value", ["yes", "1", "True", ""])
def test_fallback_takes_true_or_false(api_client, pool, make_token, value):
    response = api_client.get(
        f"/api/v1/resolve?provider=openai&fallback={value}", **bearer(make_token("keys:secret"))
    )
    assert response.status_code == 400
    assert "fallback" in response.json()["errors"]


def test_cooling_ends_by_itself(pool, organization):
    report(pool["zeta"], 503, retry_after=30)
    later = timezone.now() + timedelta(seconds=31)
    assert health.health_of(fresh(pool["zeta"]), later) == health.OK
    found = selectors.provider_key_pool(
        organization_id=organization.pk, provider="openai", available_only=True, now=later
    )
    assert names(found)[0] == "zeta"


# --- Reports ------------------------------------------------------------------------------------


def post_report(api_client, token, key, body):
    return api_client.post(f"/api/v1/keys/{key.pk}/report", body, format="json", **bearer(token))


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (401, None, "failing"),
        (403, None, "failing"),
        (429, None, "cooling"),
        (500, 5, "cooling"),
        (599, None, "cooling"),
        (200, None, "ok"),
        (204, None, "ok"),
        (404, None, "ok"),
        (400, None, "ok"),
    ],
)
def test_a_report_answers_202_with_the_keys_health(
    api_client, provider_key, make_token, status, retry_after, expected
):
    body = {"status": status} | ({"retry_after": retry_after} if retry_after is not None else {})
    response = post_report(api_client, make_token("keys:secret"), provider_key, body)
    assert response.status_code == 202
    assert response.json()["health"] == expected
    assert response.json()["id"] == str(provider_key.pk)
    assert "secret" not in response.json()


@pytest.mark.parametrize(
    ("retry_after", "seconds"), [(None, 60), (0, 0), (120, 120), (3600, 3600), (99999, 3600)]
)
def test_cooling_lasts_retry_after_seconds_at_most_an_hour(provider_key, retry_after, seconds):
    now = timezone.now()
    report(provider_key, 429, retry_after=retry_after, now=now)
    assert fresh(provider_key).cooling_until == now + timedelta(seconds=seconds)


def test_a_2xx_clears_cooling_but_not_failing(provider_key):
    report(provider_key, 429, retry_after=600)
    report(provider_key, 200)
    assert fresh(provider_key).health == health.OK
    report(provider_key, 401)
    report(provider_key, 200)
    assert fresh(provider_key).health == health.FAILING


def test_a_shorter_retry_after_does_not_shorten_cooling(provider_key):
    now = timezone.now()
    report(provider_key, 429, retry_after=600, now=now)
    report(provider_key, 503, retry_after=5, now=now)
    assert fresh(provider_key).cooling_until == now + timedelta(seconds=600)


def test_rotation_clears_failing_and_is_audited_as_a_health_change(provider_key):
    report(provider_key, 401)
    services.provider_key_rotate(
        key=fresh(provider_key), actor=OPERATOR, secret="sk-proj-rotatedROTATEDrotated0123456789"
    )
    key = fresh(provider_key)
    assert key.failing_since is None
    assert key.health == health.OK
    changes = AuditEvent.objects.filter(action=AuditAction.KEY_HEALTH_CHANGED).order_by("id")
    assert [(e.metadata["from"], e.metadata["to"]) for e in changes] == [
        ("unchecked", "failing"),
        ("failing", "ok"),
    ]


def test_a_health_change_is_audited_once_not_per_report(provider_key):
    for _ in range(5):
        report(provider_key, 401)
    for _ in range(3):
        report(provider_key, 200)
    events = AuditEvent.objects.filter(action=AuditAction.KEY_HEALTH_CHANGED)
    assert events.count() == 1
    event = events.get()
    assert event.metadata == {"from": "unchecked", "to": "failing", "reported_status": 401}
    assert event.target_id == str(provider_key.pk)


def test_reports_are_counted_per_key_and_hour(provider_key, organization):
    other = ProviderKeyFactory(organization=organization)
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    for status in (200, 200, 429, 401, 503):
        report(provider_key, status, now=hour + timedelta(minutes=5))
    report(provider_key, 200, now=hour - timedelta(minutes=10))
    report(other, 500, now=hour)
    counts = {
        (row.key_id, row.hour): (row.reports, row.failures) for row in KeyReportCount.objects.all()
    }
    assert counts == {
        (provider_key.pk, hour): (5, 3),
        (provider_key.pk, hour - timedelta(hours=1)): (1, 0),
        (other.pk, hour): (1, 1),
    }


def test_a_report_does_not_move_the_secrets_etag(api_client, provider_key, make_token):
    token = make_token("keys:secret")
    first = api_client.get(f"/api/v1/keys/{provider_key.pk}/secret", **bearer(token))
    post_report(api_client, token, provider_key, {"status": 429})
    again = api_client.get(
        f"/api/v1/keys/{provider_key.pk}/secret",
        HTTP_IF_NONE_MATCH=first["ETag"],
        **bearer(token),
    )
    assert again.status_code == 304


def test_another_organizations_token_reports_get_404_and_change_nothing(
    api_client, provider_key, make_token, other_organization
):
    token = make_token("keys:read", "keys:secret", "keys:write", organization=other_organization)
    before = snapshot()
    response = post_report(api_client, token, provider_key, {"status": 401})
    assert response.status_code == 404
    missing = api_client.post(
        "/api/v1/keys/00000000-0000-4000-8000-000000000000/report",
        {"status": 401},
        format="json",
        **bearer(token),
    )
    assert missing.status_code == 404
    assert response.json() == missing.json()
    assert snapshot() == before


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"status": "401"},
        {"status": 401.0},
        {"status": True},
        {"status": 99},
        {"status": 600},
        {"status": None},
        {"status": 429, "retry_after": -1},
        {"status": 429, "retry_after": "60"},
        {"status": 429, "retry_after": 1.5},
        {"status": 429, "retry_after": False},
        {"status": 401, "health": "ok"},
        [401],
        "401",
    ],
    ids=repr,
)
def test_bad_report_bodies_are_400_and_change_nothing(api_client, provider_key, make_token, body):
    token = make_token("keys:secret")
    before = snapshot()
    response = post_report(api_client, token, provider_key, body)
    assert response.status_code == 400, response.content
    assert response.json()["errors"]
    assert snapshot() == before


def test_reports_need_keys_secret(api_client, provider_key, make_token):
    before = key_row(provider_key)
    response = post_report(
        api_client, make_token("keys:read", "keys:write"), provider_key, {"status": 401}
    )
    assert response.status_code == 403
    assert "keys:secret" in response.json()["detail"]
    assert key_row(provider_key) == before


def test_people_cannot_report(provider_key, actor_of):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.provider_key_report(key=provider_key, actor=actor_of("owner"), status=401)


def test_reports_are_throttled_per_key_with_sixty_a_minute_always_allowed(
    api_client, provider_key, organization, make_token, settings, monkeypatch
):
    from keyvault.services import key_health

    # One minute's window for the whole test, wherever the clock is.
    monkeypatch.setattr(key_health.time, "time", lambda: 1_800_000_000.0)
    settings.KEYVAULT_REPORTS_PER_KEY_PER_MINUTE = 1  # below the floor: 60 still allowed
    token = make_token("keys:secret")
    other = ProviderKeyFactory(organization=organization)
    answers = [post_report(api_client, token, provider_key, {"status": 200}) for _ in range(61)]
    assert [a.status_code for a in answers[:60]] == [202] * 60
    assert answers[60].status_code == 429
    assert answers[60].json()["code"] == "report_throttled"
    assert int(answers[60]["Retry-After"]) >= 1
    # Another key of the same token is counted apart.
    assert post_report(api_client, token, other, {"status": 200}).status_code == 202
    assert KeyReportCount.objects.get(key=provider_key).reports == 60


def test_a_health_change_appears_once_on_the_event_feed(provider_key):
    from keyvault.models import KeyEvent

    before = set(KeyEvent.objects.values_list("pk", flat=True))
    for _ in range(3):
        report(provider_key, 401)
    report(provider_key, 200)
    new = KeyEvent.objects.exclude(pk__in=before)
    assert list(new.values_list("type", "key_id")) == [("key.health_changed", provider_key.pk)]


def test_reordering_writes_key_updated_for_each_key_that_moved(pool, organization):
    from keyvault.models import KeyEvent

    before = set(KeyEvent.objects.values_list("pk", flat=True))
    order = [pool[name].pk for name in ("zeta", "gamma", "alpha", "beta")]
    services.provider_key_pool_reorder(
        organization=organization, actor=OPERATOR, provider="openai", key_ids=order
    )
    found = selectors.provider_key_pool(organization_id=organization.pk, provider="openai")
    assert names(found) == ["zeta", "gamma", "alpha", "beta"]
    new = KeyEvent.objects.exclude(pk__in=before)
    assert set(new.values_list("type", flat=True)) == {"key.updated"}
    assert new.count() == 4  # every priority changed (500, 50, 10, 10 → 10, 20, 30, 40)


def test_a_reorder_must_name_the_whole_pool(pool, organization):
    before = snapshot()
    with pytest.raises(ValidationError):
        services.provider_key_pool_reorder(
            organization=organization,
            actor=OPERATOR,
            provider="openai",
            key_ids=[pool["alpha"].pk, pool["beta"].pk],
        )
    assert snapshot() == before
