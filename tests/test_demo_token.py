"""`make token` (`manage.py demo_token`): a ready curl line for the demo organization whose
token works, one such token at a time, development only, and a readable reason otherwise."""

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from keyvault.models import ProxyToken

pytestmark = pytest.mark.django_db

CURL = re.compile(
    r'^curl -H "Authorization: Bearer (kvp_[A-Za-z0-9_-]{43})" '
    r'"http://127\.0\.0\.1:8000/api/v1/resolve\?provider=openai"$'
)


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip()


@pytest.fixture
def demo(settings):
    settings.DEBUG = True
    run("seed_demo")


def test_it_prints_a_curl_line_whose_token_resolves_the_demo_key(demo, client):
    line = run("demo_token")
    token = CURL.fullmatch(line).group(1)
    response = client.get("/api/v1/resolve?provider=openai", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert response.json()["name"] == "Production"


def test_running_it_again_revokes_the_previous_token(demo, client):
    first = CURL.fullmatch(run("demo_token")).group(1)
    second = CURL.fullmatch(run("demo_token")).group(1)
    assert first != second
    auth = {"HTTP_AUTHORIZATION": f"Bearer {first}"}
    assert client.get("/api/v1/ping", **auth).status_code == 401
    active = ProxyToken.objects.filter(name="make token", revoked_at__isnull=True)
    assert active.count() == 1


def test_it_refuses_without_debug(demo, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="development only"):
        run("demo_token")


def test_without_the_demo_organization_it_says_what_to_run(settings):
    settings.DEBUG = True
    with pytest.raises(CommandError, match="run `make run`"):
        run("demo_token")


def test_a_failing_create_token_says_why_on_stderr_and_prints_nothing_to_capture(tmp_path):
    # `TOKEN=$(python manage.py create_token …)` captures stdout only: the reason must be on
    # stderr, and stdout empty, so `&& curl` never runs with a blank token.
    from tests.test_settings import run as run_process
    from tests.test_settings import unconfigured_env

    env = unconfigured_env(tmp_path)
    assert run_process(["manage.py", "migrate", "-v0"], env).returncode == 0
    result = run_process(
        ["manage.py", "create_token", "--org", "acme", "--name", "edge", "--scopes", "keys:read"],
        env,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == "CommandError: No organization with slug 'acme'."
