"""gunicorn's sync worker, answering the API's oversized requests in the API's own JSON.

gunicorn refuses a request line longer than `limit_request_line` (414) and headers beyond its
header limits (431) itself, before the application sees the request, with a small HTML page.
A proxy talking to `/api/` expects `{"detail": …}` like every other API error. The request
was not parsed, so its path is taken from the first bytes the client sent, read with
`MSG_PEEK` (they stay in the socket for gunicorn's own parser). When those bytes do not show
an `/api/` path (TLS terminated by gunicorn itself, a request line split before its path),
gunicorn's own answer stands.
"""

import json
import re
import socket

from gunicorn import util
from gunicorn.http.errors import LimitRequestHeaders, LimitRequestLine
from gunicorn.workers.sync import SyncWorker

_API_REQUEST = re.compile(rb"[A-Z]{1,16} /api/")
_PEEK_BYTES = 32

_ANSWERS = {
    LimitRequestLine: (414, "URI Too Long", "The request line is too long."),
    LimitRequestHeaders: (431, "Request Header Fields Too Large", "The headers are too large."),
}


def json_error(status: int, reason: str, detail: str) -> bytes:
    """A complete HTTP response carrying `{"detail": detail}`; the connection is closed."""
    body = json.dumps({"detail": detail}).encode("ascii")
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


def is_api_request(first_bytes: bytes) -> bool:
    return bool(_API_REQUEST.match(first_bytes))


class JsonApiErrorsWorker(SyncWorker):
    _api_request = False

    def handle(self, listener, client, addr):
        # One connection at a time in a sync worker: the flag belongs to this one.
        self._api_request = not self.cfg.is_ssl and is_api_request(_peek(client))
        super().handle(listener, client, addr)

    def handle_error(self, req, client, addr, exc):
        answer = _ANSWERS.get(type(exc))
        if answer is None or not self._api_request:
            return super().handle_error(req, client, addr, exc)
        # As gunicorn logs it; the request never got far enough for the access log.
        self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        try:
            util.write_nonblock(client, json_error(*answer))
        except OSError:
            self.log.debug("Failed to send error message.")
        return None


def _peek(client) -> bytes:
    """The first bytes the client sent, left in the socket; empty if there are none."""
    try:
        return client.recv(_PEEK_BYTES, socket.MSG_PEEK)
    except OSError:
        return b""
