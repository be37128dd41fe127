"""gunicorn started with the production command answers the API's oversized requests in JSON,
and everything else as before."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.gunicorn_worker import is_api_request

ROOT = Path(__file__).resolve().parent.parent
LONG = b"a" * 5000  # over gunicorn's limit_request_line (4094)
BIG = b"a" * 9000  # over its limit_request_field_size (8190)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    """Whether the worker answers (not only the master listens): a worker still loading the
    app would leave the first test's request waiting in the backlog."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            connection.sendall(
                b"GET /api/v1/ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            )
            return connection.recv(16).startswith(b"HTTP/1.1")
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`gunicorn -c config/gunicorn.conf.py config.wsgi` on a free loopback port."""
    port = _free_port()
    env = {
        **os.environ,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('gunicorn') / 'db.sqlite3'}",
    }
    env.pop("GUNICORN_ACCESS_LOG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited: {process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("gunicorn did not start listening")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()


def exchange(port: int, request: bytes) -> tuple[int, dict, bytes]:
    """Send raw bytes; the status, headers (lower-cased names) and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def test_an_over_long_request_line_to_the_api_is_answered_in_json(server):
    status, headers, body = exchange(
        server, b"GET /api/v1/keys?q=" + LONG + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )

    assert status == 414
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"detail": "The request line is too long."}


def test_over_large_headers_to_the_api_are_answered_in_json(server):
    status, headers, body = exchange(
        server, b"GET /api/v1/keys HTTP/1.1\r\nHost: localhost\r\nX-Big: " + BIG + b"\r\n\r\n"
    )

    assert status == 431
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"detail": "The headers are too large."}


def test_too_many_headers_to_the_api_are_answered_in_json(server):
    many = b"".join(b"X-H%d: 1\r\n" % n for n in range(150))  # over limit_request_fields
    status, headers, body = exchange(
        server, b"GET /api/v1/ping HTTP/1.1\r\nHost: localhost\r\n" + many + b"\r\n"
    )

    assert status == 431
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["detail"]


def test_pages_keep_gunicorn_s_own_answer(server):
    status, headers, body = exchange(
        server, b"GET /o/acme/keys/?q=" + LONG + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )

    assert status == 414
    assert headers["content-type"] == "text/html"
    assert b"URI Too Long" in body


def test_an_ordinary_api_request_still_reaches_the_app(server):
    status, headers, body = exchange(
        server, b"GET /api/v1/ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )

    assert status == 401
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["detail"]


def _answers(port: int, requests: bytes, count: int) -> list[bytes]:
    """Send several requests on one connection; the raw answers, split at each status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(requests)
        answer = b""
        while answer.count(b"HTTP/1.1 ") < count or not answer.endswith(b"}"):
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    return [b"HTTP/1.1 " + part for part in answer.split(b"HTTP/1.1 ")[1:]]


def test_an_oversized_request_on_a_kept_alive_connection_is_answered_in_json(server):
    """The threaded worker keeps connections alive between requests: the second request's
    first bytes come from the parser's buffer or the socket, not from a fresh connection."""
    first = b"GET /api/v1/ping HTTP/1.1\r\nHost: localhost\r\n\r\n"
    second = b"GET /api/v1/keys?q=" + LONG + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"
    answers = _answers(server, first + second, 2)

    assert answers[0].startswith(b"HTTP/1.1 401")
    assert answers[1].startswith(b"HTTP/1.1 414")
    assert b"application/json" in answers[1]
    assert answers[1].endswith(b'{"detail": "The request line is too long."}')


def test_the_production_settings_run_the_threaded_worker_over_a_connection_pool():
    settings = {}
    exec((ROOT / "config" / "gunicorn.conf.py").read_text(), settings)  # noqa: S102
    assert settings["worker_class"] == "config.gunicorn_worker.JsonApiErrorsThreadWorker"
    # A worker parks at most KEYVAULT_EVENTS_MAX_WAITERS (100) polls: threads are left over.
    assert settings["threads"] >= 100 + settings["RETRIEVAL_THREADS"]
    assert int(os.environ["DATABASE_POOL_MAX_SIZE"]) >= 1


@pytest.mark.parametrize(
    ("first_bytes", "api"),
    [
        (b"GET /api/v1/keys?page=1 HTTP/1.1", True),
        (b"DELETE /api/", True),
        (b"GET /apix/", False),
        (b"GET /o/acme/api/", False),
        (b"GET /ap", False),  # the request line arrived in pieces: not known to be the API
        (b"\x16\x03\x01", False),  # TLS
        (b"", False),
    ],
)
def test_what_counts_as_an_api_request(first_bytes, api):
    assert is_api_request(first_bytes) is api
