"""The deployment kit's files agree with each other and with the settings (what the container
engine would only find out at run time; .ci/deploy-check runs the kit itself)."""

import re
from pathlib import Path

import yaml

BASE_DIR = Path(__file__).resolve().parent.parent
DOCKERFILE = (BASE_DIR / "Dockerfile").read_text()
ENTRYPOINT = (BASE_DIR / "deploy" / "entrypoint.sh").read_text()
COMPOSE = yaml.safe_load((BASE_DIR / "compose.yaml").read_text())
NGINX = (BASE_DIR / "deploy" / "nginx.conf").read_text()


def entrypoint_commands() -> set[str]:
    return set(re.findall(r"^    ([a-z]+)\)", ENTRYPOINT, re.M))


def test_the_image_runs_as_an_unprivileged_user():
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert users and users[-1] not in ("root", "0", "0:0")


def test_every_image_step_goes_through_the_entrypoint():
    used = set(re.findall(r"keyvault-entrypoint\"?,? \"?([a-z]+)", DOCKERFILE))
    used |= set(re.findall(r'^CMD \["([a-z]+)"\]', DOCKERFILE, re.M))
    assert used == {"collectstatic", "healthcheck", "start"}
    assert used <= entrypoint_commands()
    assert 'ENTRYPOINT ["keyvault-entrypoint"]' in DOCKERFILE
    assert "HEALTHCHECK" in DOCKERFILE


def test_the_entrypoint_serves_with_the_packaged_gunicorn_settings():
    assert 'with_name("gunicorn.conf.py")' in ENTRYPOINT
    assert re.search(r'exec "\$\(dirname "\$keyvault_bin"\)/gunicorn" -c', ENTRYPOINT)


def test_compose_runs_the_app_with_postgresql_and_redis():
    services = COMPOSE["services"]
    assert set(services) >= {"app", "db", "redis"}
    app = services["app"]
    assert app["environment"]["DEBUG"] == "false"
    assert app["environment"]["DATABASE_URL"].startswith("postgres://")
    assert app["environment"]["CACHE_URL"].startswith("redis://redis:")
    assert app["environment"]["KEYVAULT_KEKS_FILE"].startswith("/run/secrets/")
    # Loopback only: TLS is the proxy's in front.
    assert all(port.startswith("127.0.0.1:") for port in app["ports"])


def test_nginx_passes_the_scheme_and_an_unforgeable_client_address():
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in NGINX
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in NGINX
    assert "proxy_set_header Host $host;" in NGINX
    assert "return 301 https://" in NGINX
