"""Keyvault unreachable, failing, or refusing the token."""

import logging
import socket
import threading

import pytest
from conftest import FAST
from fake_keyvault import TOKEN, FakeKeyvault, free_port, wait_synced, wait_until

from keyvault_client import (
    KeyvaultAuthError,
    KeyvaultClient,
    KeyvaultStaleError,
    KeyvaultUnavailableError,
)
from keyvault_client.backoff import Backoff


@pytest.fixture
def primary(fake):
    return fake.create("openai", "primary", "sk-primary-v1", is_default=True)


def test_serves_through_a_restart_within_max_staleness_and_resumes(
    make_client, fake, primary, clock
):
    with make_client(max_staleness=60) as client:
        fake.stop()
        wait_until(lambda: client.status().error, message="a failed sync")
        clock.advance(59)
        assert client.resolve("openai").secret == "sk-primary-v1"
        fake.rotate(primary, "sk-primary-v2")  # while the server is down
        fake.start()  # same port
        wait_synced(client, fake)
        assert client.resolve("openai").version == 2
        status = client.status()
        assert status.error is None
        assert not status.stale


def test_raises_after_max_staleness_and_recovers_with_keyvault(make_client, fake, primary, clock):
    with make_client(max_staleness=60) as client:
        fake.stop()
        wait_until(lambda: client.status().error, message="a failed sync")
        clock.advance(61)
        with pytest.raises(KeyvaultStaleError, match="no successful sync with Keyvault for 6"):
            client.resolve("openai")
        with pytest.raises(KeyvaultStaleError):
            client.get(primary)
        assert client.status().stale
        fake.start()
        fake.emit("key.health_changed", primary)  # answers the next poll at once
        wait_until(lambda: not client.status().stale, message="a successful sync")
        assert client.resolve("openai").key_id == primary


def test_raises_after_max_staleness_on_the_real_clock(fake, primary):
    with KeyvaultClient(fake.url, TOKEN, **{**FAST, "max_staleness": 1.5}) as client:
        fake.stop()
        assert client.resolve("openai").key_id == primary  # the last sync was just now

        def stale():
            try:
                client.resolve("openai")
            except KeyvaultStaleError:
                return True
            return False

        wait_until(stale, message="the client to go stale")


def test_stale_is_logged_once_as_an_error(make_client, fake, primary, clock, caplog):
    with make_client(max_staleness=60) as client:
        fake.stop()
        clock.advance(61)
        wait_until(lambda: fake.count("events") > 0 and client.status().error, message="failure")
        with caplog.at_level(logging.DEBUG, logger="keyvault_client"):
            before = len(caplog.records)
            wait_until(lambda: len(caplog.records) > before + 5, message="more failures")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "stale" in errors[0].getMessage()


def test_401_stops_the_client_loudly(make_client, fake, primary, caplog):
    with caplog.at_level(logging.INFO, logger="keyvault_client"), make_client() as client:
        fake.revoke()
        wait_until(lambda: not client.status().running, message="the sync thread to stop")
        with pytest.raises(KeyvaultAuthError, match="refused the token"):
            client.resolve("openai")
        with pytest.raises(KeyvaultAuthError):
            client.get(primary)
        requests = len(fake.requests)
        assert client.status().keys == 0  # the secrets are forgotten
    assert len(fake.requests) == requests  # and nothing more is asked
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "401" in errors[0].getMessage()


def test_a_refused_token_fails_start_at_once(make_client, fake, primary):
    client = make_client(token="kvp_" + "x" * 43, start_timeout=60)
    with pytest.raises(KeyvaultAuthError, match="401"):
        client.start()
    assert fake.count("snapshot") == 1  # not retried
    with pytest.raises(KeyvaultAuthError):
        client.resolve("openai")


def test_a_token_without_the_scope_fails_start(make_client, fake, primary):
    fake.fail("snapshot", 403, body={"detail": "You do not have permission."})
    with pytest.raises(KeyvaultAuthError, match="keys:secret"):
        make_client(start_timeout=60).start()


def test_start_fails_clearly_when_keyvault_is_unreachable(make_client):
    client = make_client(url=f"http://127.0.0.1:{free_port()}", start_timeout=0.3)
    with pytest.raises(KeyvaultUnavailableError, match=r"no snapshot .* within 0.3s .*last error"):
        client.start()
    assert not client.status().running
    with pytest.raises(KeyvaultUnavailableError):
        client.resolve("openai")


def test_the_first_snapshot_is_retried_within_start_timeout(make_client, fake, primary):
    fake.fail("snapshot", 503, times=3)
    with make_client() as client:
        assert client.resolve("openai").key_id == primary
    assert fake.count("snapshot") == 4


def test_backoff_grows_is_capped_jittered_and_reset_on_success(make_client, fake, primary):
    client = make_client(backoff_base=0.01, backoff_max=0.04).start()
    delays = []
    next_delay = client._backoff.next_delay

    def recording(**kwargs):
        delays.append(next_delay(**kwargs))
        return delays[-1]

    client._backoff.next_delay = recording
    fake.fail("events", 500, times=5)
    wait_until(lambda: len(delays) == 5, message="five retries")
    fake.emit("key.health_changed", primary)
    wait_synced(client, fake)  # a success
    fake.fail("events", 500, times=1)
    fake.emit("key.health_changed", primary)  # ends a poll parked since then
    wait_until(lambda: len(delays) == 6, message="a failure after a success")
    steps = [0.01, 0.02, 0.04, 0.04, 0.04, 0.01]  # doubling, capped, back to base
    for delay, step in zip(delays, steps, strict=True):
        assert step / 2 <= delay <= step
    client.close()


def test_backoff_draws_from_the_upper_half_of_each_step():
    draws = []
    backoff = Backoff(1.0, 8.0, rng=lambda low, high: draws.append((low, high)) or low)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert draws == [(0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, 8.0), (4.0, 8.0)]
    assert backoff.next_delay(at_least=6.0) == 6.0  # a server's Retry-After
    assert backoff.next_delay(at_least=3600.0) == 8.0  # but never beyond the cap


def test_retry_after_of_a_throttled_poll_is_honoured(make_client, fake, primary):
    client = make_client(backoff_base=0.01, backoff_max=0.5).start()
    delays = []
    next_delay = client._backoff.next_delay
    client._backoff.next_delay = lambda **kw: delays.append(next_delay(**kw)) or delays[-1]
    fake.fail("events", 429, headers={"Retry-After": "0.3"})
    wait_until(lambda: delays, message="a retry")
    assert delays[0] >= 0.3
    client.close()


def test_a_redirect_is_not_followed_and_the_token_not_sent_there(make_client, fake, primary):
    elsewhere = FakeKeyvault().start()
    try:
        fake.fail(
            "snapshot",
            307,
            times=None,
            headers={"Location": f"{elsewhere.url}/api/v1/snapshot"},
        )
        with pytest.raises(KeyvaultUnavailableError, match="307"):
            make_client(start_timeout=0.3).start()
        assert elsewhere.requests == []
    finally:
        elsewhere.stop()


def test_close_cuts_off_a_parked_poll(make_client, fake, primary):
    client = make_client(wait=30, max_staleness=60).start()
    wait_until(lambda: fake.count("events") >= 1, message="a parked poll")
    thread = client._thread
    closer = threading.Thread(target=client.close)
    closer.start()
    closer.join(10)
    assert not closer.is_alive()
    assert not thread.is_alive()


def test_a_kept_alive_connection_closed_by_the_server_is_replaced_at_once(
    make_client, fake, primary, caplog
):
    with caplog.at_level(logging.INFO, logger="keyvault_client"), make_client() as client:
        wait_until(lambda: fake.count("events") >= 1, message="a poll")
        with fake.changed:  # close every open connection, as a server's idle timeout would
            connections = list(fake._connections)
        for sock in connections:
            sock.shutdown(socket.SHUT_RDWR)
        wait_until(lambda: fake.count("events") >= 2, message="the poll sent again")
        fake.rotate(primary, "sk-primary-v2")
        wait_synced(client, fake)
        assert client.resolve("openai").version == 2
    assert "sync failed" not in caplog.text  # retried on a new connection, not backed off
