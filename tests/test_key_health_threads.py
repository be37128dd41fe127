"""Concurrent reports about one key, with real threads on PostgreSQL: each report is applied
under the key's row lock, so a change of health is audited exactly once however many proxies
report it at the same moment, and every report is counted."""

import itertools
import threading

import pytest
from django.db import connection

from audit import AuditAction
from audit.models import AuditEvent
from keyvault import health, services
from keyvault.models import KeyReportCount, ProviderKey
from organizations.access import Access
from tests.factories import ProviderKeyFactory

pytestmark = pytest.mark.django_db(transaction=True)

OPERATOR = Access.operator("tests")
THREADS = 8
REPORTS_EACH = 10


def _in_threads(step) -> list:
    errors, start = [], threading.Barrier(THREADS)

    def run(index):
        try:
            start.wait()
            for round_ in range(REPORTS_EACH):
                step(index, round_)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return errors


def test_concurrent_refusals_mark_the_key_failing_once(postgresql_only, settings):
    settings.KEYVAULT_REPORTS_PER_KEY_PER_MINUTE = 10_000
    key = ProviderKeyFactory()

    def step(index, round_):
        fresh = ProviderKey.objects.get(pk=key.pk)
        services.provider_key_report(key=fresh, actor=OPERATOR, status=401)

    assert _in_threads(step) == []
    changes = AuditEvent.objects.filter(
        action=AuditAction.KEY_HEALTH_CHANGED, target_id=str(key.pk)
    )
    assert [(e.metadata["from"], e.metadata["to"]) for e in changes] == [("unchecked", "failing")]
    assert ProviderKey.objects.get(pk=key.pk).health == health.FAILING
    row = KeyReportCount.objects.get(key=key)
    assert (row.reports, row.failures) == (THREADS * REPORTS_EACH, THREADS * REPORTS_EACH)


def test_concurrent_mixed_reports_audit_each_transition_once(postgresql_only, settings):
    """Half the proxies say 429, half say 200: the key flips between cooling and ok, and the
    audit trail holds exactly the transitions that happened, alternating, none twice in a row."""
    settings.KEYVAULT_REPORTS_PER_KEY_PER_MINUTE = 10_000
    key = ProviderKeyFactory()

    def step(index, round_):
        fresh = ProviderKey.objects.get(pk=key.pk)
        status = 429 if index % 2 else 200
        services.provider_key_report(key=fresh, actor=OPERATOR, status=status, retry_after=600)

    assert _in_threads(step) == []
    changes = list(
        AuditEvent.objects.filter(
            action=AuditAction.KEY_HEALTH_CHANGED, target_id=str(key.pk)
        ).order_by("id")
    )
    assert changes
    for previous, current in itertools.pairwise(changes):
        assert previous.metadata["to"] == current.metadata["from"]
        assert current.metadata["from"] != current.metadata["to"]
    assert changes[-1].metadata["to"] == ProviderKey.objects.get(pk=key.pk).health
    assert KeyReportCount.objects.get(key=key).reports == THREADS * REPORTS_EACH
