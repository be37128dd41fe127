"""Usage shown where the docs promise it: retrievals per day, token and key on the usage page
(owners and admins), totals over 7 days in the key and token lists, and in the admin."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from keyvault.models import KeyUsage
from organizations import roles
from tests.factories import OrganizationFactory, ProviderKeyFactory, ProxyTokenFactory
from tests.helpers import rows, text, url

pytestmark = pytest.mark.django_db


def hour(days_ago=0, hours_ago=0):
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    return now - timedelta(days=days_ago, hours=hours_ago)


@pytest.fixture
def usage(organization):
    key = ProviderKeyFactory(organization=organization, provider="openai", name="Prod")
    gone = ProviderKeyFactory(organization=organization, provider="anthropic", name="Old")
    gateway = ProxyTokenFactory(organization=organization, name="gateway")
    batch = ProxyTokenFactory(organization=organization, name="batch")
    KeyUsage.add_counts(
        [
            (gateway.pk, key.pk, hour(), 5),
            (gateway.pk, key.pk, hour(hours_ago=1), 7),
            (batch.pk, key.pk, hour(days_ago=2), 3),
            (batch.pk, gone.pk, hour(days_ago=3), 2),
            (gateway.pk, key.pk, hour(days_ago=20), 1000),  # older than the page's window
        ]
    )
    gone.delete()
    return {"key": key, "gateway": gateway, "batch": batch}


def test_the_usage_page_counts_per_day_token_and_key(organization, owner_client, usage):
    html = text(owner_client.get(url("tokens:usage", organization)))
    cells = [
        [cell.strip() for cell in row]
        for row in re.findall(
            r'<tr>\s*<td data-label="Day"[^>]*>([^<]+)</td>\s*<td data-label="Token">([^<]+)</td>'
            r'\s*<td data-label="Key">(.*?)</td>\s*<td data-label="Retrievals"[^>]*>(\d+)</td>',
            html,
        )
    ]
    days = [f"{hour(d):%Y-%m-%d}" for d in (0, 2, 3)]
    today = f"{timezone.now():%Y-%m-%d}"
    assert ["gateway", "OpenAI · Prod"] in [c[1:3] for c in cells]
    assert sum(int(c[3]) for c in cells if c[1] == "gateway") == 12
    assert [days[1], "batch", "OpenAI · Prod", "3"] in cells
    assert [days[2], "batch", '<span class="muted">a deleted key</span>', "2"] in cells
    assert "1000" not in html and ">17<" in html  # the total of the window only
    assert today in html


@pytest.mark.parametrize("role", [roles.MEMBER.id, roles.VIEWER.id])
def test_members_and_viewers_do_not_see_the_usage_page(
    organization, member_of, signed_in, usage, role
):
    client = signed_in(member_of(organization, role).user)
    response = client.get(url("tokens:usage", organization))
    assert response.status_code in (403, 404)
    assert "gateway" not in response.content.decode()


def test_another_organizations_usage_is_not_shown(organization, owner_client, usage):
    other = OrganizationFactory()
    token = ProxyTokenFactory(organization=other, name="foreign-token")
    KeyUsage.add_counts([(token.pk, ProviderKeyFactory(organization=other).pk, hour(), 99)])
    html = owner_client.get(url("tokens:usage", organization)).content.decode()
    assert "foreign-token" not in html and ">99<" not in html


def test_the_key_and_token_lists_show_seven_day_totals(organization, owner_client, usage):
    keys = rows(owner_client.get(url("keys:list", organization)).content.decode())
    assert "15 in 7 days" in keys["Prod"]
    tokens = rows(owner_client.get(url("tokens:list", organization)).content.decode())
    assert "12 in 7 days" in tokens["gateway"]
    assert "5 in 7 days" in tokens["batch"]  # a deleted key's retrievals still count
    assert (
        url("tokens:usage", organization)
        in owner_client.get(url("tokens:list", organization)).content.decode()
    )


def test_the_admin_lists_usage_of_the_organizations_one_administers(
    organization, owner_client, usage
):
    other = OrganizationFactory()
    token = ProxyTokenFactory(organization=other, name="foreign-token")
    KeyUsage.add_counts([(token.pk, None, hour(), 4)])
    response = owner_client.get("/admin/keyvault/keyusage/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "gateway" in html and "batch" in html and "(deleted key)" in html
    assert "foreign-token" not in html
