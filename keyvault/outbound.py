"""Keyvault's own outbound HTTP calls (connection tests), safe from server-side request forgery.

The host is resolved here, every address it resolves to is checked with the endpoint rules'
`is_private_address` (private, loopback, link-local, shared, reserved, multicast and IPv4 inside
IPv6 are refused unless `KEYVAULT_ALLOW_PRIVATE_ENDPOINTS=true`), and the connection is then
opened to the address that was checked, not to the name: a DNS answer that changes between the
check and the connection (DNS rebinding) cannot move the call to an internal host. TLS still
verifies the certificate against the host name (SNI and the `Host` header carry the name).

Redirects are never followed (the next host would be unchecked), the body read is capped, and
every call has one deadline (`TIMEOUT_SECONDS`) for the whole exchange: a socket timeout alone
limits each read, so a server sending a header line or a byte just inside it could hold the
calling request's thread for as long as it liked.
"""

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from keyvault.endpoints import is_private_address, private_endpoints_allowed
from keyvault.errors import OutboundRefused

TIMEOUT_SECONDS = 10.0
MAX_BODY_BYTES = 256 * 1024


class OutboundTimeout(Exception):
    """The provider did not answer within the timeout."""


class OutboundFailed(Exception):
    """The call could not be made (no such host, connection refused, TLS failure)."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    headers: dict = field(default_factory=dict)


def _addresses(host: str, port: int) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise OutboundFailed(f"The host {host} could not be resolved.") from None
    found = []
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]
        if address not in found:
            found.append(address)
    if not found:
        raise OutboundFailed(f"The host {host} could not be resolved.")
    return found


def checked_address(host: str, port: int) -> str:
    """The address to connect to for `host`: refused (`OutboundRefused`) when any address the
    name resolves to is private, unless the operator allows private endpoints."""
    addresses = _addresses(host, port)
    if not private_endpoints_allowed():
        for address in addresses:
            if is_private_address(ipaddress.ip_address(address)):
                raise OutboundRefused(
                    f"{host} resolves to a private, loopback or link-local address; the "
                    "operator can allow those with KEYVAULT_ALLOW_PRIVATE_ENDPOINTS."
                )
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host, port, address, **kwargs):
        super().__init__(host, port, **kwargs)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, address, **kwargs):
        super().__init__(host, port, context=ssl.create_default_context(), **kwargs)
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _cut_off_after(connection, seconds: float) -> threading.Timer:
    """A timer that, when `seconds` have passed, shuts the connection's socket down: a read
    blocked on it returns at once, whatever the server is trickling."""

    def cut_off():
        sock = connection.sock
        if sock is not None:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(seconds, cut_off)
    timer.daemon = True
    timer.start()
    return timer


def request(method: str, url: str, *, headers: dict, body: bytes | None = None) -> Answer:
    """Make one request to `url` (http or https) through the checked address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundRefused("Only http and https URLs naming a host are called.")
    if parts.username or parts.password:
        raise OutboundRefused("A URL with a user name or password is not called.")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = checked_address(host, port)
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(host, port, address, timeout=TIMEOUT_SECONDS)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    too_slow = OutboundTimeout(f"{host} did not answer within {TIMEOUT_SECONDS:g} seconds.")
    deadline = time.monotonic() + TIMEOUT_SECONDS
    timer = _cut_off_after(connection, TIMEOUT_SECONDS)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read(MAX_BODY_BYTES)
        if time.monotonic() >= deadline:
            raise too_slow  # cut off mid-answer: what arrived is not the whole answer
        return Answer(
            status=response.status,
            body=data,
            headers={name.lower(): value for name, value in response.getheaders()},
        )
    except TimeoutError:
        raise too_slow from None
    except (OSError, http.client.HTTPException) as exc:
        if time.monotonic() >= deadline:
            raise too_slow from None
        raise OutboundFailed(f"{host} could not be reached ({type(exc).__name__}).") from None
    finally:
        timer.cancel()
        connection.close()
