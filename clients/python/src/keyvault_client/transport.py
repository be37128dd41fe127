"""GET requests to Keyvault over one kept-alive connection.

`http.client` rather than `urllib.request`, for three reasons:
- `urllib` follows redirects and copies the `Authorization` header to wherever a redirect
  points, even another host; here a redirect is an error and the token goes to `url` only;
- `close()` can shut the socket of a long poll in progress from another thread, so closing the
  client does not wait for the poll to end;
- successive polls reuse one connection instead of opening one per request.
It also means environment proxy variables are not used: the client connects to `url` itself.
"""

import contextlib
import http.client
import ipaddress
import json
import socket
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from keyvault_client.version import __version__

_LOOPBACK_NAMES = {"localhost"}


class TransportClosed(Exception):
    """The transport was closed; no request is made."""


class RequestFailed(Exception):
    """No usable answer: a network error, a timeout, or a body that is not JSON."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: http.client.HTTPMessage
    data: object  # the decoded JSON body, None when there was none

    def error_text(self) -> str:
        """The server's `detail` (and `code`), cut short, for an error message. Keyvault's error
        bodies never carry secrets; the cut guards against a server that is not Keyvault."""
        if isinstance(self.data, dict):
            detail = str(self.data.get("detail", ""))[:200]
            code = self.data.get("code")
            return f"{detail} ({code})" if code else detail
        return ""

    def retry_after(self) -> float:
        try:
            return max(0.0, float(self.headers.get("Retry-After", "")))
        except ValueError:
            return 0.0


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token(token: str) -> None:
    # The token goes into a header: a line break in it would inject headers. The message does
    # not quote it.
    if not isinstance(token, str) or not token or not token.isascii() or not token.isprintable():
        raise ValueError("token must be a non-empty string of printable ASCII characters")
    if any(character.isspace() for character in token):
        raise ValueError("token must not contain whitespace")


class Transport:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        allow_insecure_http: bool = False,
    ):
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(
                "url must be an http(s) URL with a host, like https://keyvault.example.com"
            )
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("url must not contain credentials, a query or a fragment")
        if parts.scheme == "http" and not (allow_insecure_http or is_loopback(parts.hostname)):
            # The bearer token and every secret would cross the network in clear text.
            raise ValueError(
                "url must use https (plain http is accepted for loopback addresses only, "
                "or with allow_insecure_http=True)"
            )
        check_token(token)
        self.url = url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._ssl_context = ssl_context or (ssl.create_default_context() if self._https else None)
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": f"keyvault-client/{__version__}",
        }
        self._lock = threading.Lock()
        self._connection: http.client.HTTPConnection | None = None
        self._closed = False

    def get(self, path: str, params: dict | None = None, *, read_timeout: float | None = None):
        """GET `path` (under the URL's own path) and decode the answer.

        A kept-alive connection the server has closed in the meantime fails on first use; the
        request is then sent once more on a fresh connection (GET is safe to repeat).
        """
        target = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        read_timeout = self._timeout if read_timeout is None else read_timeout
        for attempt in (1, 2):
            connection, reused = self._checkout()
            try:
                sock = connection.sock
                if sock is None:  # closed by close() in the meantime
                    raise http.client.NotConnected
                sock.settimeout(read_timeout)
                connection.request("GET", target, headers=self._headers)
                answer = connection.getresponse()
                body = answer.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self._discard(connection)
                if reused and attempt == 1 and not self._closed:
                    continue
                raise self._failure(exc) from None
            except (OSError, http.client.HTTPException) as exc:
                self._discard(connection)
                raise self._failure(exc) from None
            if answer.will_close:
                self._discard(connection)
            return Response(answer.status, answer.headers, _decode(answer.status, body))
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Make every later `get` fail, and end the one in progress now: shutting the socket
        down wakes a thread blocked reading it."""
        with self._lock:
            self._closed = True
            connection, self._connection = self._connection, None
        if connection is not None:
            _shut(connection)

    def _checkout(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._closed:
                raise TransportClosed
            if self._connection is not None:
                return self._connection, True
        if self._https:
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=self._ssl_context
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        # Never reconnect behind our back: a connection close() has shut must stay shut, not
        # open a new socket that nothing would close.
        connection.auto_open = 0
        try:
            connection.connect()
        except OSError as exc:
            connection.close()
            raise self._failure(exc) from None
        with self._lock:
            if self._closed:
                connection.close()
                raise TransportClosed
            self._connection = connection
        return connection, False

    def _discard(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if self._connection is connection:
                self._connection = None
        connection.close()

    def _failure(self, exc: BaseException) -> Exception:
        if self._closed:
            return TransportClosed()
        # The text of a network error names hosts and errno, never the request's headers.
        return RequestFailed(f"{type(exc).__name__}: {exc}".rstrip(": "))


def _shut(connection: http.client.HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed by the other side
            sock.shutdown(socket.SHUT_RDWR)
    connection.close()


def _decode(status: int, body: bytes) -> object:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        if 200 <= status < 300:
            raise RequestFailed(f"HTTP {status} with a body that is not JSON") from None
        return None  # an error page from a load balancer, say: the status tells enough
