"""A real Keyvault server for the client's live tests: the checkout this package lives in, run
under gunicorn with the production settings file, on a scratch database.

The server is provisioned the way an operator would do it, with its own management commands
(`migrate`, `create_org`, `create_token`, `revoke_token`), and keys are written through its
proxy API with a `keys:write` token, so every change goes through the same services and
writes the same events as in production.

The database is a SQLite file in a temporary folder, or, when `DATABASE_URL` names a
PostgreSQL server, a scratch database `<its name>_client_live` on it (created and dropped
here). `KEYVAULT_LIVE_PORT` picks the port (default: a free one).
"""

import base64
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from fake_keyvault import free_port

# clients/python/tests/ -> the checkout's root, where manage.py is.
CHECKOUT = Path(__file__).resolve().parents[3]
ORG = "acme"


class ServerUnavailable(Exception):
    """The live server could not be prepared or started (with the reason and its log's tail)."""


def must_run() -> bool:
    """Under CI a live test that cannot start its server fails instead of skipping."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


class LiveKeyvault:
    def __init__(self, workdir: Path, *, port: int | None = None):
        self.workdir = workdir
        self.port = port or int(os.environ.get("KEYVAULT_LIVE_PORT") or free_port())
        self.log_path = workdir / "server.log"
        self._process: subprocess.Popen | None = None
        self._log = None
        self._scratch_pg: tuple[str, str] | None = None  # (server URL, database name)
        self.env = self._environment()
        self.writer_token = ""
        self.proxy_token = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # Provisioning, with the project's own commands

    def prepare(self) -> "LiveKeyvault":
        if not (CHECKOUT / "manage.py").is_file():
            raise ServerUnavailable(f"no Keyvault checkout at {CHECKOUT}")
        try:
            import django  # noqa: F401  (the server runs on this interpreter)
            import gunicorn  # noqa: F401
        except ImportError as exc:
            raise ServerUnavailable(
                f"the server's dependencies are not installed here ({exc.name})"
            ) from None
        if self._scratch_pg is not None:
            self._create_database()
        self.manage("migrate", "--noinput")
        self.manage("create_org", "--name", "Acme", "--slug", ORG, "--owner", "ops@example.com")
        self.writer_token = self.create_token("writer", "keys:read,keys:write")
        self.proxy_token = self.create_token("proxy", "keys:read,keys:secret")
        return self

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=CHECKOUT,
            env=self.env,
            text=True,
            capture_output=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise ServerUnavailable(
                f"manage.py {args[0]} failed ({result.returncode}): {result.stderr[-2000:]}"
            )
        return result.stdout

    def create_token(self, name: str, scopes: str) -> str:
        output = self.manage("create_token", "--org", ORG, "--name", name, "--scopes", scopes)
        return output.strip()

    def revoke_token(self, name: str) -> None:
        self.manage("revoke_token", "--org", ORG, "--name", name)

    # The HTTP side

    def start(self, timeout: float = 60.0) -> None:
        if self.running:
            return
        self._log = open(self.log_path, "a")  # noqa: SIM115  (kept open while the server runs)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi"],
            cwd=CHECKOUT,
            env={**self.env, "GUNICORN_BIND": f"127.0.0.1:{self.port}"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers are stopped with it, by its group
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._close_log()
                raise ServerUnavailable(
                    f"gunicorn exited with {self._process.returncode}: {self.log_tail()}"
                )
            with contextlib.suppress(OSError):
                status, _ = self.api("GET", "/api/v1/ping", timeout=2)
                if status == 200:
                    return
            time.sleep(0.2)
        self.stop()
        raise ServerUnavailable(f"gunicorn did not answer within {timeout:g}s: {self.log_tail()}")

    def stop(self) -> None:
        """A graceful stop (SIGTERM), as a deployment's restart does: the server is gone, its
        port refuses connections, until `start()`."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self._close_log()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def close(self) -> None:
        self.stop()
        if self._scratch_pg is not None:
            with contextlib.suppress(Exception):
                self._drop_database()

    def log_tail(self, size: int = 3000) -> str:
        return self.log_text()[-size:]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def api(self, method: str, path: str, body=None, *, token: str | None = None, timeout=10):
        """One request with the writer token (or `token`); (status, decoded JSON or None)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {token or self.writer_token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
            error.close()
        return status, (json.loads(raw) if raw else None)

    # Writes through the proxy API, each checked

    def create_key(self, provider: str, name: str, secret: str, **fields) -> dict:
        return self._expect(
            201,
            "POST",
            "/api/v1/keys",
            {"provider": provider, "name": name, "secret": secret} | fields,
        )

    def patch_key(self, key_id: str, **fields) -> dict:
        return self._expect(200, "PATCH", f"/api/v1/keys/{key_id}", fields)

    def delete_key(self, key_id: str) -> None:
        self._expect(204, "DELETE", f"/api/v1/keys/{key_id}")

    def _expect(self, expected: int, method: str, path: str, body=None):
        status, data = self.api(method, path, body)
        if status != expected:
            detail = data if isinstance(data, dict) else None
            raise AssertionError(f"{method} {path} answered {status}, not {expected}: {detail}")
        return data

    # Settings and the scratch database

    def _environment(self) -> dict:
        kek = base64.b64encode(secrets.token_bytes(32)).decode()
        env = {
            name: value
            for name, value in os.environ.items()
            # Nothing of a developer's Keyvault configuration leaks into the scratch server.
            if not name.startswith(("KEYVAULT_", "GUNICORN_", "DJANGO_"))
            and name not in ("DATABASE_URL", "CACHE_URL", "DEBUG", "SECRET_KEY")
        }
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            DEBUG="false",
            SECRET_KEY=secrets.token_urlsafe(50),
            ALLOWED_HOSTS="127.0.0.1",
            SECURE_SSL_REDIRECT="false",
            KEYVAULT_VAR_DIR=str(self.workdir / "var"),
            KEYVAULT_KEKS=f"live:{kek}",
            CACHE_URL="locmemcache://",
            KEYVAULT_API_TOKEN_RATE_PER_MINUTE="0",
            LOG_LEVEL="INFO",
            GUNICORN_WORKERS="4",
            GUNICORN_ACCESS_LOG="-",
            PYTHONUNBUFFERED="1",
        )
        configured = os.environ.get("DATABASE_URL", "")
        if configured.startswith(("postgres://", "postgresql://")):
            parts = urlsplit(configured)
            name = (parts.path.lstrip("/") or "keyvault") + "_client_live"
            server = urlunsplit((parts.scheme, parts.netloc, "/postgres", "", ""))
            self._scratch_pg = (server, name)
            env["DATABASE_URL"] = urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))
        else:
            env["DATABASE_URL"] = f"sqlite:///{self.workdir / 'keyvault.sqlite3'}"
        return env

    def _create_database(self) -> None:
        self._drop_database()
        self._psql(f'CREATE DATABASE "{self._scratch_pg[1]}"')

    def _drop_database(self) -> None:
        self._psql(f'DROP DATABASE IF EXISTS "{self._scratch_pg[1]}" WITH (FORCE)')

    def _psql(self, statement: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise ServerUnavailable(
                "DATABASE_URL names PostgreSQL but psycopg is missing"
            ) from None
        try:
            with psycopg.connect(self._scratch_pg[0], autocommit=True) as connection:
                connection.execute(statement)
        except psycopg.Error as exc:
            raise ServerUnavailable(f"PostgreSQL: {type(exc).__name__}: {exc}") from None

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
