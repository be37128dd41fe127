"""gunicorn's workers, answering the API's oversized requests in the API's own JSON: the
threaded worker production runs (`JsonApiErrorsThreadWorker`) and the sync worker.

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
import threading

from gunicorn import util
from gunicorn.http.errors import LimitRequestHeaders, LimitRequestLine
from gunicorn.workers import gthread
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


class _JsonApiErrors:
    """Answers gunicorn's 414 and 431 in JSON when the request being handled is the API's
    (`_api_request`, set by each worker class before gunicorn parses the request)."""

    _api_request = False

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


class JsonApiErrorsWorker(_JsonApiErrors, SyncWorker):
    """The sync worker: one connection, one request at a time."""

    def handle(self, listener, client, addr):
        # One connection at a time in a sync worker: the flag belongs to this one.
        self._api_request = not self.cfg.is_ssl and is_api_request(_peek(client))
        super().handle(listener, client, addr)


class JsonApiErrorsThreadWorker(_JsonApiErrors, gthread.ThreadWorker):
    """gunicorn's threaded worker (`gthread`): a pool of threads per process, while idle
    kept-alive connections wait in the worker's poller, not in a thread. Each request runs in
    one thread from start to end, so the flag is kept per thread."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._local = threading.local()

    @property
    def _api_request(self):
        return getattr(self._local, "api_request", False)

    def handle(self, conn):
        # gunicorn waits here for a new connection's first bytes before committing a thread to
        # it (and hands it back to its poller when none come); peeking before that wait would
        # block the thread instead. A kept-alive connection comes back readable, or with the
        # next request already read into its parser's buffer.
        waiting = not conn.initialized and not conn.data_ready
        if waiting and not conn.wait_for_data(gthread.DEFAULT_WORKER_DATA_TIMEOUT):
            return gthread._DEFER
        self._local.api_request = not self.cfg.is_ssl and is_api_request(_first_bytes(conn))
        return super().handle(conn)


def _first_bytes(conn) -> bytes:
    """The first bytes of the connection's next request, left where they are."""
    buffered = conn.parser.unreader.buf.getvalue() if conn.parser is not None else b""
    return buffered[:_PEEK_BYTES] if buffered else _peek(conn.sock)


def _peek(client) -> bytes:
    """The first bytes the client sent, left in the socket; empty if there are none."""
    try:
        return client.recv(_PEEK_BYTES, socket.MSG_PEEK)
    except OSError:
        return b""
