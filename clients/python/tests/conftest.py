import threading

import pytest
from fake_keyvault import TOKEN, FakeKeyvault

from keyvault_client import KeyvaultClient

# Small numbers so that a failure and a retry take milliseconds, not seconds.
FAST = {
    "wait": 1,
    "timeout": 2.0,
    "start_timeout": 5.0,
    "backoff_base": 0.01,
    "backoff_max": 0.05,
}


class FakeClock:
    """The client's idea of time since its last sync, moved by the test alone."""

    def __init__(self):
        self._now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@pytest.fixture
def fake():
    server = FakeKeyvault().start()
    yield server
    server.stop()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def make_client(fake, clock):
    """A client of `fake` on the fake clock, closed after the test."""
    clients = []

    def make(url=None, token=TOKEN, **options):
        client = KeyvaultClient(url or fake.url, token, **{"clock": clock, **FAST, **options})
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
