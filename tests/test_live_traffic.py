"""Writers beside live traffic, with real threads on PostgreSQL.

Proxies fetch secrets and the usage flush writes their counts while people delete keys and
organizations and an operator rotates the KEK. Every writer takes its row locks in one order
(docs/decisions.md, "One lock order for every writer"), so none of them may fail with a
deadlock: every delete succeeds, the job completes, and no flush fails.
"""

import logging
import random
import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from keyvault import services
from keyvault.models import KeyUsage, ProviderKey, ProxyToken
from keyvault.usage import UsageRecorder, recorder
from organizations import services as org_services
from organizations.access import Access
from organizations.models import Organization
from tests.factories import OrganizationFactory, ProviderKeyFactory, ProxyTokenFactory

pytestmark = pytest.mark.django_db(transaction=True)

SYSTEM = Access.operator("tests")


@pytest.fixture(autouse=True)
def _unthrottled(settings):
    settings.KEYVAULT_API_TOKEN_RATE_PER_MINUTE = 0
    # Proxies whose token went with its organization keep asking: not an attack to slow down.
    settings.KEYVAULT_API_AUTH_FAILURES_PER_MINUTE = 0


@pytest.fixture
def flush_failures(caplog):
    """The usage flushes that failed (the recorder logs each one and keeps its counts)."""
    caplog.set_level(logging.ERROR, logger="keyvault.usage")

    def failures():
        return [record.getMessage() for record in caplog.records if record.name == "keyvault.usage"]

    return failures


class Traffic:
    """Background threads, each running one step in a loop on its own database connection
    until the `with` block ends; the exceptions they raised are in `errors`."""

    def __init__(self, *steps):
        self.steps = steps
        self.stop = threading.Event()
        self.errors: list = []
        self.rounds = 0
        self.threads = [threading.Thread(target=self._loop, args=(step,)) for step in steps]

    def _loop(self, step):
        try:
            while not self.stop.is_set():
                step()
                self.rounds += 1
        except Exception as exc:
            self.errors.append(exc)
        finally:
            connection.close()

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in self.threads), "traffic did not stop"

    def wait_for_rounds(self, rounds: int) -> None:
        """Until the threads have run `rounds` steps in all (the traffic is under way)."""
        while self.rounds < rounds and not self.errors and not self.stop.wait(0.005):
            pass


def in_threads(*functions):
    """Run each function on its own thread and connection at once; their results (or the
    exceptions they raised), in order."""
    results = [None] * len(functions)
    start = threading.Barrier(len(functions), timeout=30)

    def body(index, function):
        try:
            start.wait()
            results[index] = function()
        except Exception as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=item) for item in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def proxy(token):
    """A step that fetches every listed key's secret once through the API, then flushes."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.raw}")

    def step(key_ids):
        for key_id in random.sample(key_ids, len(key_ids)):
            response = client.get(f"/api/v1/keys/{key_id}/secret")
            # 404: the key was deleted; 401: the token too, with its organization.
            assert response.status_code in (200, 401, 404), response.content
        recorder.flush()

    return step


def app_instance(pairs, share=1 / 3):
    """A step of another app instance (its own recorder): count a use of a random `share` of
    the (token, key) pairs, then flush."""
    instance = UsageRecorder(flush_seconds=None, max_pending=100_000)

    def step():
        # A random part of them each time, as real traffic does: a flush that rewrote every
        # row in key order each time would leave the table physically in key order.
        for token_id, key_id in random.sample(pairs, round(len(pairs) * share)):
            instance.record_secret_retrieval(token_id, key_id)
        instance.flush()

    return step


def world(keys=24, tokens=2):
    """An organization with `keys` keys and `tokens` proxy tokens, each token having fetched
    each key once already (so the flushes that follow update existing usage rows)."""
    organization = OrganizationFactory()
    made_keys = [ProviderKeyFactory(organization=organization) for _ in range(keys)]
    made_tokens = [ProxyTokenFactory(organization=organization) for _ in range(tokens)]
    pairs = [(token.pk, key.pk) for token in made_tokens for key in made_keys]
    app_instance(pairs, share=1)()
    assert KeyUsage.objects.filter(key__organization=organization).count() == len(pairs)
    return organization, made_keys, made_tokens, pairs


# --- Deleting keys that proxies are using ------------------------------------------------------


def test_keys_in_use_are_deleted_over_the_api_without_a_single_failure(
    postgresql_only, flush_failures
):
    organization, keys, tokens, pairs = world(keys=40)
    key_ids = [key.pk for key in keys]
    deleter = ProxyTokenFactory(organization=organization, scopes=["keys:read", "keys:write"])

    def delete(doomed):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {deleter.raw}")
        return [client.delete(f"/api/v1/keys/{key_id}").status_code for key_id in doomed]

    fetchers = [proxy(token) for token in tokens]
    with Traffic(
        *(lambda fetch=fetch: fetch(key_ids) for fetch in fetchers),
        app_instance(pairs),
        app_instance(pairs[::-1]),
    ) as traffic:
        traffic.wait_for_rounds(4)
        statuses = in_threads(lambda: delete(key_ids[0::2]), lambda: delete(key_ids[1::2]))

    assert traffic.errors == []
    assert statuses == [[204] * 20, [204] * 20]
    assert flush_failures() == []
    assert not ProviderKey.objects.filter(organization=organization).exists()
    # The record of who fetched the deleted keys stays.
    assert KeyUsage.objects.filter(token__in=tokens, key=None).count() == len(pairs)


def test_an_organization_in_use_is_deleted_without_a_single_failure(
    postgresql_only, flush_failures
):
    others = world(keys=6)
    for _ in range(4):
        organization, _keys, _tokens, pairs = world(keys=20, tokens=3)
        key_ids = [key.pk for key in _keys]
        fetchers = [proxy(token) for token in _tokens]
        with Traffic(
            *(lambda fetch=fetch, ids=key_ids: fetch(ids) for fetch in fetchers),
            app_instance(pairs),
            app_instance(others[3] + pairs[::-1]),
        ) as traffic:
            traffic.wait_for_rounds(3)
            org_services.organization_delete(organization=organization, actor=SYSTEM)
            traffic.wait_for_rounds(traffic.rounds + 3)

        assert traffic.errors == []
        assert not Organization.objects.filter(pk=organization.pk).exists()
        assert not ProxyToken.objects.filter(organization_id=organization.pk).exists()
    assert flush_failures() == []
    assert ProviderKey.objects.filter(organization=others[0]).count() == 6


# --- Rotating the KEK beside traffic -----------------------------------------------------------


def test_rotate_kek_completes_beside_flushes_and_edits(
    postgresql_only, old_kek_first, flush_failures, caplog
):
    caplog.set_level(logging.WARNING, logger="keyvault.rotation")
    organization = OrganizationFactory()
    expected = {}
    with old_kek_first():
        for n in range(150):
            secret = f"sk-proj-live-{n:03d}-abcdefghijklmnopqrstuvwxyz012345"
            expected[ProviderKeyFactory(organization=organization, secret=secret).pk] = secret
    tokens = [ProxyTokenFactory(organization=organization)]
    pairs = [(token.pk, key_id) for token in tokens for key_id in expected]
    app_instance(pairs, share=1)()
    user = Access.operator("an editor")
    lock = threading.Lock()
    edits = iter(range(1_000_000))

    def edit():
        key_id = random.choice(list(expected))
        key = ProviderKey.objects.get(pk=key_id)
        n = next(edits)
        if n % 3:
            services.provider_key_update(key=key, actor=user, name=f"Edited {n}")
        else:
            secret = f"sk-proj-edited-{n:06d}-abcdefghijklmnopqrstuvwxyz012"
            with lock:
                services.provider_key_rotate(key=key, actor=user, secret=secret)
                expected[key_id] = secret

    outputs = []
    with Traffic(app_instance(pairs), app_instance(pairs[::-1]), edit, edit) as traffic:
        traffic.wait_for_rounds(4)
        for turn in range(10):
            out = StringIO()
            # Every other turn moves every key back under test-old, so each turn has work.
            if turn % 2:
                with old_kek_first():
                    call_command("rotate_kek", "--batch-size", "75", stdout=out, stderr=StringIO())
            else:
                call_command("rotate_kek", "--batch-size", "75", stdout=out, stderr=StringIO())
            outputs.append(out.getvalue())

    assert traffic.errors == []
    assert flush_failures() == []
    assert all("Re-wrapped" in output for output in outputs)
    # Not even a batch that had to be tried again: the lock order, not the retry, holds.
    assert [r.getMessage() for r in caplog.records if r.name == "keyvault.rotation"] == []
    for key in ProviderKey.objects.filter(organization=organization):
        assert services.provider_key_reveal(key=key, actor=SYSTEM) == expected[key.pk]


# --- Two requests for one key at once ---------------------------------------------------------


@pytest.fixture
def together(monkeypatch):
    """`together("provider_key_delete", "provider_key_rotate")`: the next call of each of these
    services waits for the other at its start, so both requests have read the key and passed
    their checks before either locks it, as two clicks that arrive together do."""

    def arm(*names):
        start = threading.Barrier(len(names), timeout=30)
        for name in set(names):
            real = getattr(services, name)

            def waiting(*args, real=real, **kwargs):
                start.wait()
                return real(*args, **kwargs)

            monkeypatch.setattr(services, name, waiting)

    return arm


def key_page(organization, action, key):
    return f"/o/{organization.slug}/keys/{key.pk}/{action}/"


def test_a_double_clicked_delete_on_the_page_deletes_once_and_says_so(
    postgresql_only, organization, owner, signed_in, together
):
    key = ProviderKeyFactory(organization=organization, name="Clicked twice")
    clients = [signed_in(owner), signed_in(owner)]
    together("provider_key_delete", "provider_key_delete")

    responses = in_threads(
        *(
            lambda c=client: c.post(key_page(organization, "delete", key), follow=True)
            for client in clients
        )
    )

    assert [r.redirect_chain[0][1] for r in responses] == [302, 302]
    pages = sorted(r.content.decode() for r in responses)
    assert sum("Deleted Clicked twice." in page for page in pages) == 1
    assert sum("Clicked twice was already deleted." in page for page in pages) == 1
    assert not ProviderKey.objects.filter(pk=key.pk).exists()


def test_a_rotation_racing_a_delete_on_the_pages_never_fails(
    postgresql_only, organization, owner, signed_in, together
):
    deleter, rotator = signed_in(owner), signed_in(owner)
    for n in range(8):  # which one locks the key first varies; neither may fail
        key = ProviderKeyFactory(organization=organization, name=f"Raced {n}")
        together("provider_key_delete", "provider_key_rotate")

        deleted, rotated = in_threads(
            lambda key=key: deleter.post(key_page(organization, "delete", key), follow=True),
            lambda key=key: rotator.post(
                key_page(organization, "rotate", key),
                {"secret": "sk-proj-R0tatedWhileBeingDeleted0123456789ab"},
                follow=True,
            ),
        )

        assert f"Deleted Raced {n}." in deleted.content.decode()
        assert rotated.redirect_chain[0][1] == 302
        page = rotated.content.decode()
        saved = f"Rotated Raced {n}" in page
        assert saved != (f"Raced {n} was deleted meanwhile; nothing was saved." in page)
        assert not ProviderKey.objects.filter(pk=key.pk).exists()


@pytest.mark.parametrize(
    ("second", "body", "service"),
    [
        ("delete", None, "provider_key_delete"),
        ("patch", {"enabled": False}, "provider_key_update"),
        ("patch", {"secret": "sk-proj-PatchedWhileBeingDeleted0123456789"}, "provider_key_update"),
    ],
    ids=["delete", "edit", "rotate"],
)
def test_api_writes_racing_a_delete_answer_204_200_or_404(
    postgresql_only, organization, make_token, together, second, body, service
):
    key = ProviderKeyFactory(organization=organization)
    token = make_token("keys:read", "keys:write")
    together("provider_key_delete", service)

    def call(method, data=None):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.raw}")
        return getattr(client, method)(f"/api/v1/keys/{key.pk}", data, format="json")

    deleted, other = in_threads(lambda: call("delete"), lambda: call(second, body))

    assert deleted.status_code == 204 or (second == "delete" and deleted.status_code == 404)
    assert other.status_code in ({204, 404} if second == "delete" else {200, 404})
    assert {deleted.status_code, other.status_code} != {404}
    if other.status_code == 404:
        assert other.json() == {"detail": "Not found."}
    assert not ProviderKey.objects.filter(pk=key.pk).exists()
