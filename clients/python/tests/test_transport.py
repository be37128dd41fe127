"""The HTTP side: one kept-alive connection, closed for good by close()."""

import pytest
from fake_keyvault import TOKEN

from keyvault_client.transport import Transport, TransportClosed


def test_a_connection_shut_by_close_is_not_reopened_by_a_request_under_way(fake):
    transport = Transport(fake.url, TOKEN, timeout=2.0)
    assert transport.get("/api/v1/snapshot").status == 200
    checkout = transport._checkout

    def checkout_then_close():
        found = checkout()
        transport.close()  # lands between taking the connection and sending on it
        return found

    transport._checkout = checkout_then_close
    with pytest.raises(TransportClosed):
        transport.get("/api/v1/snapshot")
    assert fake.count("snapshot") == 1  # the second request never left


def test_a_closed_transport_makes_no_request(fake):
    transport = Transport(fake.url, TOKEN, timeout=2.0)
    transport.close()
    with pytest.raises(TransportClosed):
        transport.get("/api/v1/snapshot")
    assert fake.requests == []
