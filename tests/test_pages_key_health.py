"""The key page, its chart and the overview: what they show matches what was recorded, the
chart is drawn on the server within the Content-Security-Policy, and no secret appears.
(Who may open each page and see each control: tests/test_pages_access.py.)"""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from keyvault import charts, selectors, services
from keyvault.models import KeyUsage, ProviderKey
from keyvault.usage import recorder
from organizations.access import Access
from tests.factories import ProviderKeyFactory, ProxyTokenFactory
from tests.helpers import text, url

OPERATOR = Access.operator("tests")
SECRET = "sk-proj-chartSECRETabcdefghijklmnopqrstuv"


@pytest.fixture
def key(organization):
    return ProviderKeyFactory(organization=organization, name="charted", secret=SECRET)


def _hour(moment):
    return moment.replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def recorded(organization, key):
    """Retrievals by two tokens and reports at known hours; the expected counts per hour."""
    now = timezone.now()
    this_hour = _hour(now)
    gateway = ProxyTokenFactory(organization=organization, name="gateway")
    batch = ProxyTokenFactory(organization=organization, name="batch")
    retrievals = {this_hour: 3, this_hour - timedelta(hours=5): 7, this_hour - timedelta(days=6): 2}
    for hour, count in retrievals.items():
        for n in range(count):
            token = gateway if n % 2 == 0 else batch
            recorder.record_secret_retrieval(token.pk, key.pk, at=hour + timedelta(minutes=n))
    # Outside the 7 days: not charted.
    recorder.record_secret_retrieval(gateway.pk, key.pk, at=this_hour - timedelta(days=8))
    recorder.flush()
    failures = {this_hour - timedelta(hours=5): 2, this_hour - timedelta(hours=30): 1}
    reports = [
        (this_hour - timedelta(hours=5), 429),
        (this_hour - timedelta(hours=5), 401),
        (this_hour - timedelta(hours=5), 200),
        (this_hour - timedelta(hours=30), 503),
    ]
    for at, status in reports:
        services.provider_key_report(
            key=ProviderKey.objects.get(pk=key.pk), actor=OPERATOR, status=status, now=at
        )
    return {"now": now, "retrievals": retrievals, "failures": failures, "tokens": (gateway, batch)}


def test_the_activity_matches_the_recorded_usage_hour_by_hour(key, recorded):
    activity = selectors.key_activity(key=key, now=recorded["now"])
    assert len(activity) == 7 * 24
    assert activity[-1].hour == _hour(recorded["now"])
    assert {a.hour: a.retrievals for a in activity if a.retrievals} == recorded["retrievals"]
    assert {a.hour: a.failures for a in activity if a.failures} == recorded["failures"]
    stored = sum(KeyUsage.objects.filter(key=key).values_list("count", flat=True))
    assert sum(a.retrievals for a in activity) == stored - 1  # the one 8 days ago


def test_the_chart_draws_one_bar_per_recorded_hour_to_scale(key, recorded):
    chart = charts.activity_chart(selectors.key_activity(key=key, now=recorded["now"]))
    drawn = [bar for bar in chart.retrievals if bar.height]
    assert len(drawn) == len(recorded["retrievals"])
    tallest = max(drawn, key=lambda bar: bar.height)
    assert tallest.title.endswith(": 7 retrievals")
    assert tallest.y == pytest.approx(8)  # the peak reaches the top of the plot
    assert chart.total_retrievals == 12 and chart.total_failures == 3 and chart.peak == 7


def test_the_key_page_shows_the_chart_history_and_tokens_without_a_secret(
    organization, owner_client, key, recorded
):
    response = owner_client.get(url("keys:detail", organization, pk=key.pk))
    assert response.status_code == 200
    html = text(response)
    assert SECRET not in html
    titles = re.findall(r"<rect class=\"bar-retrievals\"[^>]*><title>([^<]*)</title>", html)
    hours = {
        f"{hour:%Y-%m-%d %H}:00 UTC: {n} retrievals" for hour, n in recorded["retrievals"].items()
    }
    assert set(titles) == hours
    failures = re.findall(r"<rect class=\"bar-failures\"[^>]*><title>([^<]*)</title>", html)
    assert set(failures) == {
        f"{hour:%Y-%m-%d %H}:00 UTC: {n} failure reports"
        for hour, n in recorded["failures"].items()
    }
    assert "12 secret retrievals and 3 failure reports in the last 168 hours" in html
    # The owner manages tokens: the tokens are named, busiest first.
    gateway, batch = recorded["tokens"]
    assert html.index(gateway.name) < html.index(f"…{batch.last_four}")
    # Health history from the reports, newest first: unchecked → cooling → failing.
    later = html.index("Health cooling → failing, reported 401")
    assert later < html.index("Health unchecked → cooling, reported 429")


def test_the_key_page_draws_within_the_content_security_policy(
    organization, owner_client, key, recorded
):
    response = owner_client.get(url("keys:detail", organization, pk=key.pk))
    html = text(response)
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert " style=" not in html
    assert "<style" not in html
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None
    assert "<svg" in html


def test_a_viewer_sees_how_many_tokens_but_not_which(
    organization, member_of, signed_in, key, recorded
):
    viewer = member_of(organization, "viewer").user
    html = text(signed_in(viewer).get(url("keys:detail", organization, pk=key.pk)))
    gateway, batch = recorded["tokens"]
    assert "2 proxy tokens fetched this key" in html
    assert gateway.name not in html and batch.last_four not in html


def test_the_overview_counts_keys_per_provider_and_health(organization, owner_client):
    now = timezone.now()
    keys = [ProviderKeyFactory(organization=organization, provider="openai") for _ in range(4)]
    ProviderKeyFactory(
        organization=organization, provider="anthropic", secret="sk-ant-overviewKEY0123456789"
    )
    services.provider_key_report(key=keys[0], actor=OPERATOR, status=401)
    services.provider_key_report(key=keys[1], actor=OPERATOR, status=429, retry_after=600)
    services.provider_key_update(key=keys[2], actor=OPERATOR, enabled=False)
    ProviderKey.objects.filter(pk=keys[3].pk).update(last_used_at=now - timedelta(days=91))
    rows = {
        row.provider.id: row
        for row in selectors.organization_key_overview(organization_id=organization.pk)
    }
    openai = rows["openai"]
    assert (openai.keys, openai.enabled, openai.failing, openai.cooling) == (4, 3, 1, 1)
    assert (openai.stale, openai.unused) == (1, 3)
    assert (rows["anthropic"].keys, rows["anthropic"].unused) == (1, 1)
    html = text(owner_client.get(url("keys:overview", organization)))
    assert re.search(
        r"All providers</th><td>5</td><td>4</td><td>1</td>\s*<td>1</td><td>1</td><td>4</td>", html
    )


def test_stale_follows_the_setting(organization, settings, owner_client):
    key = ProviderKeyFactory(organization=organization, name="old-key")
    ProviderKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(days=10))
    settings.KEYVAULT_STALE_DAYS = 30
    assert ">stale</span>" not in text(owner_client.get(url("keys:list", organization)))
    settings.KEYVAULT_STALE_DAYS = 7
    assert ">stale</span>" in text(owner_client.get(url("keys:list", organization)))


def test_the_list_counts_down_a_cooling_key(organization, owner_client):
    key = ProviderKeyFactory(organization=organization, name="hot-key")
    services.provider_key_report(key=key, actor=OPERATOR, status=429, retry_after=600)
    html = text(owner_client.get(url("keys:list", organization)))
    assert re.search(r"cooling, <time datetime=\"[^\"]+\">(9|10)\xa0minutes</time> left", html)


def test_moving_a_key_reorders_the_pool(organization, owner_client):
    first = ProviderKeyFactory(organization=organization, name="first")
    second = ProviderKeyFactory(organization=organization, name="second")
    response = owner_client.post(url("keys:move", organization, pk=second.pk), {"direction": "up"})
    assert response.status_code == 302
    pool = selectors.provider_key_pool(organization_id=organization.pk, provider="openai")
    assert [key.name for key in pool] == ["second", "first"]
    assert first.pk != second.pk


def test_the_default_key_does_not_move(organization, owner_client):
    default = ProviderKeyFactory(organization=organization, name="main", is_default=True)
    other = ProviderKeyFactory(organization=organization, name="other")
    owner_client.post(url("keys:move", organization, pk=other.pk), {"direction": "up"})
    pool = selectors.provider_key_pool(organization_id=organization.pk, provider="openai")
    assert [key.name for key in pool] == ["main", "other"]
    assert ProviderKey.objects.get(pk=default.pk).priority == 100


@pytest.mark.parametrize("direction", ["", "sideways", "UP"])
def test_a_bad_direction_moves_nothing(organization, owner_client, direction):
    ProviderKeyFactory(organization=organization, name="a")
    b = ProviderKeyFactory(organization=organization, name="b")
    owner_client.post(url("keys:move", organization, pk=b.pk), {"direction": direction})
    assert set(ProviderKey.objects.values_list("priority", flat=True)) == {100}


def test_the_test_button_records_the_result_and_says_so(organization, owner_client, key):
    response = owner_client.post(url("keys:test", organization, pk=key.pk), follow=True)
    assert response.status_code == 200
    html = text(response)
    assert "Test of charted failed: Not called:" in html
    assert SECRET not in html
    assert ProviderKey.objects.get(pk=key.pk).last_check_ok is False
