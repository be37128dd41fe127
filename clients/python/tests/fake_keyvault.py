"""A small stand-in for Keyvault's proxy API: snapshot, event feed (with a long-polling `wait`),
one key's secret, 401 for a refused token, 410 for an expired cursor. Loopback only.

Tests change keys through its methods, each of which appends the event Keyvault would write;
`fail()` makes the next requests of one kind answer an error, `stop()` and `start()` take the
HTTP side down and up again on the same port while the data stays.
"""

import contextlib
import json
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TOKEN = "kvp_" + "t" * 43


def _now() -> str:
    return datetime.now(UTC).isoformat()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeKeyvault:
    def __init__(self, *, page_size: int = 500):
        self.page_size = page_size
        self.changed = threading.Condition()  # guards everything below; RLock inside
        self.tokens = {TOKEN}
        self.keys: dict[str, dict] = {}
        self.events: list[dict] = []
        self.last_event_id = 1000  # cursors are opaque integers; not starting at 0 shows it
        self.oldest_valid_cursor = 0  # `after` below this answers 410
        self.requests: list[str] = []  # "snapshot", "events", "secret", in arrival order
        self.faults: list[dict] = []
        self.damaged: set[str] = set()  # keys whose stored value "fails its integrity check"
        self.port: int | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._serving = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cursor(self) -> int:
        with self.changed:
            return self.last_event_id

    def count(self, kind: str) -> int:
        with self.changed:
            return self.requests.count(kind)

    # HTTP side

    def start(self, port: int | None = None) -> "FakeKeyvault":
        server = _Server(("127.0.0.1", port or self.port or 0), _handler(self))
        self.port = server.server_address[1]
        with self.changed:
            self._serving = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Like a process that dies: parked polls are cut off without an answer and kept-alive
        connections are reset."""
        with self.changed:
            self._serving = False
            self.changed.notify_all()
            connections = list(self._connections)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # Changes, each with its event

    @contextlib.contextmanager
    def batch(self):
        """Changes made inside appear to the feed together, on one page."""
        with self.changed:
            yield
            self.changed.notify_all()

    def create(self, provider, name, secret, *, config=None, is_default=False, enabled=True):
        key_id = str(uuid.uuid4())
        with self.changed:
            if is_default:
                self._undefault(provider)
            now = _now()
            self.keys[key_id] = {
                "id": key_id,
                "provider": provider,
                "name": name,
                "hint": secret[:3] + "…" + secret[-4:],
                "config": dict(config or {}),
                "is_default": is_default,
                "enabled": enabled,
                "priority": 100,
                "version": 1,
                "created_at": now,
                "updated_at": now,
                "rotated_at": None,
                "last_used_at": None,
                "health": "unchecked",
                "cooling_until": None,
                "last_checked_at": None,
                "last_check_ok": None,
                "stale": False,
                "secret": secret,
            }
            self._emit("key.created", key_id)
        return key_id

    def rotate(self, key_id, secret):
        with self.changed:
            key = self.keys[key_id]
            key.update(secret=secret, version=key["version"] + 1, rotated_at=_now())
            key["hint"] = secret[:3] + "…" + secret[-4:]
            self._emit("key.rotated", key_id)

    def update(self, key_id, **fields):
        with self.changed:
            key = self.keys[key_id]
            if fields.get("is_default"):
                self._undefault(key["provider"])
            key.update(fields)
            self._emit("key.updated", key_id)

    def disable(self, key_id):
        with self.changed:
            self.keys[key_id]["enabled"] = False
            self._emit("key.disabled", key_id)

    def enable(self, key_id):
        with self.changed:
            self.keys[key_id]["enabled"] = True
            self._emit("key.enabled", key_id)

    def delete(self, key_id):
        with self.changed:
            self._emit("key.deleted", key_id)
            del self.keys[key_id]

    def emit(self, event_type, key_id, **overrides):
        """An event of any type (one the client does not know, say), changing nothing."""
        with self.changed:
            self._emit(event_type, key_id, **overrides)

    def expire_events(self):
        """Forget every event so far, as retention does, with one more (pruned) change after
        them: every cursor handed out before answers 410."""
        with self.changed:
            self.last_event_id += 1
            self.events.clear()
            self.oldest_valid_cursor = self.last_event_id
            self.changed.notify_all()

    def damage(self, key_id):
        """The key's stored value fails its integrity check from now on: its secret answers
        500 `key_integrity_error` and the snapshot lists it as unavailable. No event: damage
        is found, not made by a change."""
        with self.changed:
            self.damaged.add(key_id)

    def revoke(self, token=TOKEN):
        with self.changed:
            self.tokens.discard(token)
            self.changed.notify_all()

    def fail(self, kind, status, *, times=1, body=None, headers=None):
        """The next `times` requests of `kind` answer `status` (`times=None`: until cleared)."""
        with self.changed:
            self.faults.append(
                {
                    "kind": kind,
                    "status": status,
                    "times": times,
                    "body": body if body is not None else {"detail": "Injected failure."},
                    "headers": headers or {},
                }
            )

    def clear_faults(self):
        with self.changed:
            self.faults.clear()

    def _undefault(self, provider):
        for other in self.keys.values():
            if other["provider"] == provider and other["is_default"]:
                other["is_default"] = False
                self._emit("key.updated", other["id"])

    def _emit(self, event_type, key_id, **overrides):
        self.last_event_id += 1
        key = self.keys.get(key_id, {})
        event = {
            "id": self.last_event_id,
            "type": event_type,
            "key_id": key_id,
            "provider": key.get("provider"),
            "name": key.get("name"),
            "version": key.get("version"),
            "is_default": key.get("is_default"),
            "enabled": key.get("enabled"),
            "occurred_at": _now(),
        }
        event.update(overrides)
        self.events.append(event)
        self.changed.notify_all()

    # Answers; called with `changed` held

    def _fault(self, kind):
        for fault in self.faults:
            if fault["kind"] == kind:
                if fault["times"] is not None:
                    fault["times"] -= 1
                    if fault["times"] <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    def _snapshot(self):
        enabled = [key for key in self.keys.values() if key["enabled"]]
        keys = [dict(key) for key in enabled if key["id"] not in self.damaged]
        unavailable = [
            {"id": key["id"], "code": "key_integrity_error"}
            for key in enabled
            if key["id"] in self.damaged
        ]
        return 200, {"cursor": self.last_event_id, "keys": keys, "unavailable": unavailable}

    def _secret(self, key_id):
        key = self.keys.get(key_id)
        if key is None:
            return 404, {"detail": "Not found."}
        if not key["enabled"]:
            return 409, {"detail": "This key is disabled.", "code": "key_disabled"}
        if key_id in self.damaged:
            return 500, {
                "detail": "The stored value failed its integrity check.",
                "code": "key_integrity_error",
            }
        return 200, dict(key)

    def _events(self, query, token):
        try:
            after = int(query["after"][0])
        except (KeyError, ValueError):
            return 400, {"detail": "Invalid input.", "errors": {"after": ["An integer."]}}
        wait = min(float(query.get("wait", ["0"])[0]), 30.0)

        def answer_ready():
            return (
                not self._serving
                or token not in self.tokens
                or after < self.oldest_valid_cursor
                or any(event["id"] > after for event in self.events)
            )

        self.changed.wait_for(answer_ready, timeout=wait)
        if not self._serving:
            return None  # cut off, no answer
        if token not in self.tokens:
            return 401, {"detail": "Invalid token."}
        if after < self.oldest_valid_cursor:
            return 410, {"detail": "This cursor has expired.", "code": "cursor_expired"}
        page = [event for event in self.events if event["id"] > after][: self.page_size]
        return 200, {"events": page, "cursor": page[-1]["id"] if page else after}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a connection the test cut off; the client's side is what is being tested


def _handler(fake: FakeKeyvault):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as behind gunicorn's threaded workers

        def setup(self):
            super().setup()
            with fake.changed:
                fake._connections.add(self.connection)

        def finish(self):
            with fake.changed:
                fake._connections.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def log_message(self, *args):
            pass

        def do_GET(self):
            parts = urlsplit(self.path)
            segments = parts.path.strip("/").split("/")
            if segments[:2] != ["api", "v1"]:
                return self._send(404, {"detail": "Not found."})
            route = segments[2:]
            if route == ["snapshot"]:
                kind = "snapshot"
            elif route == ["events"]:
                kind = "events"
            elif len(route) == 3 and route[0] == "keys" and route[2] == "secret":
                kind = "secret"
            else:
                return self._send(404, {"detail": "Not found."})
            header = self.headers.get("Authorization", "")
            token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
            with fake.changed:
                fake.requests.append(kind)
                if not fake._serving:
                    return self._cut()
                if token not in fake.tokens:
                    return self._send(401, {"detail": "Invalid token."})
                fault = fake._fault(kind)
                if fault is not None:
                    return self._send(fault["status"], fault["body"], fault["headers"])
                if kind == "snapshot":
                    answer = fake._snapshot()
                elif kind == "secret":
                    answer = fake._secret(route[1])
                else:
                    answer = fake._events(parse_qs(parts.query), token)
            if answer is None:
                return self._cut()
            return self._send(*answer)

        def _send(self, status, body, headers=None):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="keyvault"')
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _cut(self):
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler


def wait_until(predicate, timeout=10.0, message="condition"):
    """Poll `predicate` until it is true; fail the test after `timeout` seconds (a bound on a
    hang, not a timing being tested)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.01)


def wait_synced(client, fake, timeout=10.0):
    """Wait until the client has applied every event the fake has written."""
    target = fake.cursor
    wait_until(
        lambda: (client.status().cursor or 0) >= target,
        timeout,
        f"the client to reach cursor {target}",
    )
