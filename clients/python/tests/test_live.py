"""The client against a real Keyvault: the checkout's server under gunicorn on a scratch
database, provisioned with its own commands and changed through its API (live_keyvault.py).

Every wait below is for a condition with a deadline (a bound on a hang, never a timing under
test). Without a server these tests skip, except under CI=true, where they fail.
"""

import asyncio
import json
import logging
import urllib.request
import uuid

import pytest
from fake_keyvault import TOKEN, FakeKeyvault, wait_until
from live_keyvault import LiveKeyvault, ServerUnavailable, must_run

from keyvault_client import (
    AsyncKeyvaultClient,
    KeyvaultAuthError,
    KeyvaultClient,
    KeyvaultNotFoundError,
    KeyvaultStaleError,
)

# Short polls and quick retries, so that a restart or a revocation is noticed in a second or so.
LIVE = {
    "wait": 1,
    "timeout": 5.0,
    "start_timeout": 30.0,
    "backoff_base": 0.05,
    "backoff_max": 0.5,
}
DEADLINE = 15.0  # seconds any one change may take to reach the client before the test fails


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = LiveKeyvault(tmp_path_factory.mktemp("keyvault-live"))
    try:
        server.prepare()
        server.start()
    except ServerUnavailable as exc:
        server.close()
        if must_run():
            pytest.fail(f"the live Keyvault server did not start: {exc}")
        pytest.skip(f"no live Keyvault server: {exc}")
    yield server
    server.close()


@pytest.fixture
def server(live):
    live.start()  # again, after a test that stopped it
    return live


@pytest.fixture
def connect(server):
    """A started client of the live server (the proxy token unless given), closed after."""
    clients = []

    def make(token=None, **options):
        client = KeyvaultClient(server.url, token or server.proxy_token, **{**LIVE, **options})
        clients.append(client)
        return client.start()

    yield make
    for client in clients:
        client.close()


def unique(prefix="key"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def secret(prefix="sk-live-"):
    return prefix + uuid.uuid4().hex + uuid.uuid4().hex


def served(client, key_id):
    """The credential the client serves for `key_id`, or None."""
    try:
        return client.get(key_id)
    except KeyvaultNotFoundError:
        return None


def default_of(client, provider):
    """The id of the key `resolve(provider)` answers, or None (between two defaults)."""
    try:
        return client.resolve(provider).key_id
    except KeyvaultNotFoundError:
        return None


def test_the_snapshot_serves_every_enabled_key_of_the_organization(server, connect):
    first = server.create_key("anthropic", unique(), secret("sk-ant-"), is_default=True)
    off = server.create_key("anthropic", unique(), secret("sk-ant-"), enabled=False)
    client = connect()
    credential = client.resolve("anthropic")
    assert (credential.key_id, credential.version) == (first["id"], 1)
    assert credential.name == first["name"] and credential.hint == first["hint"]
    assert client.resolve("anthropic", name=first["name"].upper()).key_id == first["id"]
    with pytest.raises(KeyvaultNotFoundError):
        client.get(off["id"])
    assert client.status().ready and client.status().cursor is not None


def test_a_rotation_reaches_the_client(server, connect):
    old, new = secret(), secret()
    key = server.create_key("openai", unique(), old)
    client = connect()
    assert client.get(key["id"]).secret == old
    server.patch_key(key["id"], secret=new)
    credential = wait_until(
        lambda: (c := served(client, key["id"])) and c.version == 2 and c,
        DEADLINE,
        "the rotation to reach the client",
    )
    assert credential.secret == new
    assert credential.rotated_at is not None


def test_a_created_key_and_a_new_default_reach_the_client(server, connect):
    current = server.create_key("groq", unique(), secret("gsk_"), is_default=True)
    client = connect()
    assert client.resolve("groq").key_id == current["id"]
    added = server.create_key("groq", unique(), secret("gsk_"))
    wait_until(lambda: served(client, added["id"]), DEADLINE, "the new key")
    server.patch_key(current["id"], is_default=False)  # Keyvault moves a default in two steps
    server.patch_key(added["id"], is_default=True)
    wait_until(lambda: default_of(client, "groq") == added["id"], DEADLINE, "the new default")
    assert client.get(current["id"]).is_default is False


def test_a_disabled_key_is_dropped_and_comes_back_when_enabled(server, connect):
    key = server.create_key("mistral", unique(), secret("mk-"), is_default=True)
    client = connect()
    assert client.resolve("mistral").key_id == key["id"]
    server.patch_key(key["id"], enabled=False)
    wait_until(lambda: served(client, key["id"]) is None, DEADLINE, "the key to be dropped")
    with pytest.raises(KeyvaultNotFoundError):
        client.resolve("mistral")  # no fallback to another key
    with pytest.raises(KeyvaultNotFoundError):
        client.resolve("mistral", name=key["name"])
    server.patch_key(key["id"], enabled=True)
    wait_until(lambda: served(client, key["id"]), DEADLINE, "the key to come back")
    assert client.resolve("mistral").key_id == key["id"]


def test_a_deleted_key_is_dropped(server, connect):
    key = server.create_key("deepseek", unique(), secret())
    client = connect()
    assert client.get(key["id"]).secret
    server.delete_key(key["id"])
    wait_until(lambda: served(client, key["id"]) is None, DEADLINE, "the key to be dropped")
    with pytest.raises(KeyvaultNotFoundError):
        client.resolve("deepseek", name=key["name"])


def test_a_disabled_key_stays_dropped_while_keyvault_is_down(server, connect):
    key = server.create_key("xai", unique(), secret("xai-"))
    client = connect(max_staleness=120)
    server.patch_key(key["id"], enabled=False)
    wait_until(lambda: served(client, key["id"]) is None, DEADLINE, "the key to be dropped")
    server.stop()
    wait_until(lambda: client.status().error, DEADLINE, "a failed sync")
    with pytest.raises(KeyvaultNotFoundError):
        client.get(key["id"])


def test_serves_through_a_restart_within_max_staleness_raises_after_it_and_recovers(
    server, connect
):
    old, new = secret(), secret()
    key = server.create_key("openai", unique(), old)
    patient = connect(max_staleness=300)  # outlives the restart
    impatient = connect(max_staleness=2)  # does not

    def stale(client):
        try:
            client.get(key["id"])
        except KeyvaultStaleError:
            return True
        return False

    server.stop()
    wait_until(lambda: patient.status().error, DEADLINE, "a failed sync")
    assert patient.get(key["id"]).secret == old  # Keyvault is down; memory serves
    wait_until(lambda: stale(impatient), DEADLINE, "the impatient client to go stale")
    with pytest.raises(KeyvaultStaleError, match="max_staleness"):
        impatient.resolve("openai", name=key["name"])
    assert patient.get(key["id"]).secret == old  # still within its max_staleness

    server.start()
    server.patch_key(key["id"], secret=new)
    for client in (patient, impatient):
        credential = wait_until(
            lambda c=client: not stale(c) and c.get(key["id"]).version == 2 and c.get(key["id"]),
            DEADLINE,
            "the client to resume after the restart",
        )
        assert credential.secret == new
        assert client.status().error is None


def test_a_revoked_token_stops_the_client_loudly(server, connect, caplog):
    key = server.create_key("openai", unique(), secret())
    name = unique("revoked")
    token = server.create_token(name, "keys:read,keys:secret")
    with caplog.at_level(logging.INFO, logger="keyvault_client"):
        client = connect(token=token)
        assert client.get(key["id"]).secret
        server.revoke_token(name)
        wait_until(lambda: not client.status().running, DEADLINE, "the sync thread to stop")
    with pytest.raises(KeyvaultAuthError, match="401"):
        client.get(key["id"])
    with pytest.raises(KeyvaultAuthError):
        client.resolve("openai", name=key["name"])
    assert client.status().keys == 0  # the secrets are forgotten
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "refused the token" in errors[0].getMessage()


def test_an_unknown_token_fails_start_and_one_without_the_secret_scope_too(server):
    with pytest.raises(KeyvaultAuthError, match="401"):
        KeyvaultClient(server.url, "kvp_" + "x" * 43, **LIVE).start()
    reader = server.create_token(unique("reader"), "keys:read")
    with pytest.raises(KeyvaultAuthError, match="403"):
        KeyvaultClient(server.url, reader, **LIVE).start()


def test_the_secret_and_the_token_stay_out_of_logs_and_repr(server, connect, caplog):
    values = [secret(), secret(), secret()]
    key = server.create_key("openai", unique(), values[0])
    with caplog.at_level(logging.DEBUG):
        client = connect()
        server.patch_key(key["id"], secret=values[1])
        wait_until(lambda: client.get(key["id"]).version == 2, DEADLINE, "the rotation")
        server.patch_key(key["id"], secret=values[2])
        credential = wait_until(
            lambda: (c := client.get(key["id"])).version == 3 and c, DEADLINE, "the rotation"
        )
        server.patch_key(key["id"], enabled=False)
        wait_until(lambda: served(client, key["id"]) is None, DEADLINE, "the drop")
        shown = [repr(credential), str(credential), repr(client), repr(client.status())]
    text = caplog.text + "\n".join(shown) + server.log_text()
    assert key["id"] in caplog.text  # the logs did speak of the key
    for value in [*values, server.proxy_token]:
        assert value not in text


def test_the_asyncio_client_follows_the_live_server(server):
    key = server.create_key("anthropic", unique(), secret("sk-ant-"))
    new = secret("sk-ant-")

    async def scenario():
        async with AsyncKeyvaultClient(server.url, server.proxy_token, **LIVE) as client:
            before = await client.get(key["id"])
            await asyncio.to_thread(server.patch_key, key["id"], secret=new)
            for _ in range(int(DEADLINE * 20)):
                after = await client.get(key["id"])
                if after.version == 2:
                    return before, after
                await asyncio.sleep(0.05)
            raise AssertionError("the rotation did not reach the asyncio client")

    before, after = asyncio.run(scenario())
    assert (before.version, after.secret) == (1, new)


def test_the_fake_answers_in_the_real_servers_shapes(server):
    """The fake's snapshot, events and secret carry the fields the real server's do, with the
    same JSON types: the tests against the fake test the real contract."""
    key = server.create_key("openai", unique(), secret())
    status, snapshot = server.api("GET", "/api/v1/snapshot", token=server.proxy_token)
    assert status == 200
    status, page = server.api(
        "GET", f"/api/v1/events?after={snapshot['cursor'] - 1}", token=server.proxy_token
    )
    assert status == 200 and page["events"]
    status, one = server.api("GET", f"/api/v1/keys/{key['id']}/secret", token=server.proxy_token)
    assert status == 200

    fake = FakeKeyvault().start()
    try:
        fake_key = fake.create("openai", "primary", secret())
        _, fake_snapshot = _get(fake, "/api/v1/snapshot")
        _, fake_page = _get(fake, "/api/v1/events?after=0")
        _, fake_one = _get(fake, f"/api/v1/keys/{fake_key}/secret")
    finally:
        fake.stop()
    assert_same_shape(fake_snapshot, snapshot, "snapshot")
    assert_same_shape(fake_snapshot["keys"][0], snapshot["keys"][0], "snapshot key")
    assert_same_shape(fake_page, page, "events page")
    assert_same_shape(fake_page["events"][0], page["events"][-1], "event")
    assert_same_shape(fake_one, one, "secret")


def _get(fake, path):
    request = urllib.request.Request(fake.url + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, json.loads(response.read())


def assert_same_shape(fake: dict, real: dict, what: str) -> None:
    """The same field names, and the same JSON type wherever both have a value (null is a value
    not set yet, such as a key's first rotation)."""
    assert sorted(fake) == sorted(real), what
    for name in real:
        if fake[name] is not None and real[name] is not None:
            assert type(fake[name]) is type(real[name]), f"{what}: {name}"
