"""Keeping memory current from the event feed."""

import logging

import pytest
from fake_keyvault import wait_synced, wait_until

from keyvault_client import KeyvaultNotFoundError, KeyvaultStaleError


@pytest.fixture
def primary(fake):
    return fake.create("openai", "primary", "sk-primary-v1", is_default=True)


def test_rotation_is_picked_up(make_client, fake, primary):
    with make_client() as client:
        assert client.resolve("openai").version == 1
        fake.rotate(primary, "sk-primary-v2")
        wait_synced(client, fake)
        credential = client.resolve("openai")
    assert (credential.secret, credential.version) == ("sk-primary-v2", 2)
    assert credential.rotated_at is not None


def test_a_long_poll_answers_as_soon_as_a_change_is_made(make_client, fake, primary):
    # With a wait far longer than the test's patience, only the early answer can pass it.
    with make_client(wait=30, max_staleness=60) as client:
        wait_until(lambda: fake.count("events") >= 1, message="a parked poll")
        fake.rotate(primary, "sk-primary-v2")
        wait_synced(client, fake, timeout=5)
        assert client.resolve("openai").version == 2


def test_a_created_key_appears(make_client, fake, primary):
    with make_client() as client:
        key_id = fake.create("anthropic", "main", "sk-ant-main", is_default=True)
        wait_synced(client, fake)
        assert client.resolve("anthropic").key_id == key_id
        assert client.get(key_id).secret == "sk-ant-main"


def test_an_update_refreshes_config_and_name(make_client, fake, primary):
    with make_client() as client:
        fake.update(primary, name="renamed", config={"organization": "org-abc"})
        wait_synced(client, fake)
        assert client.resolve("openai", name="renamed").config == {"organization": "org-abc"}
        with pytest.raises(KeyvaultNotFoundError):
            client.resolve("openai", name="primary")


def test_a_new_default_takes_over(make_client, fake, primary):
    other = fake.create("openai", "other", "sk-other")
    with make_client() as client:
        fake.update(other, is_default=True)
        wait_synced(client, fake)
        assert client.resolve("openai").key_id == other
        assert client.get(primary).is_default is False


def test_a_disabled_key_is_dropped_and_stays_dropped_when_keyvault_goes_away(
    make_client, fake, primary
):
    backup = fake.create("openai", "backup", "sk-backup")
    with make_client() as client:
        fake.disable(primary)
        wait_synced(client, fake)
        fake.stop()
        with pytest.raises(KeyvaultNotFoundError):
            client.resolve("openai")  # no fallback to another key
        with pytest.raises(KeyvaultNotFoundError):
            client.get(primary)
        assert client.resolve("openai", name="backup").key_id == backup


def test_a_deleted_key_is_dropped(make_client, fake, primary):
    with make_client() as client:
        fake.delete(primary)
        wait_synced(client, fake)
        with pytest.raises(KeyvaultNotFoundError):
            client.get(primary)
        with pytest.raises(KeyvaultNotFoundError):
            client.resolve("openai", name="primary")


def test_a_re_enabled_key_is_served_again(make_client, fake, primary):
    with make_client() as client:
        fake.disable(primary)
        wait_synced(client, fake)
        fake.enable(primary)
        wait_synced(client, fake)
        assert client.resolve("openai").key_id == primary


def test_a_drop_does_not_wait_for_the_rest_of_its_page(make_client, fake, primary):
    """A disable is applied even while a fetch for another event of the same page keeps
    failing; the rotated key keeps its last known version meanwhile."""
    other = fake.create("anthropic", "main", "sk-ant-v1", is_default=True)
    with make_client() as client:
        fake.fail("secret", 500, times=None)
        with fake.batch():
            fake.rotate(other, "sk-ant-v2")
            fake.disable(primary)
        wait_until(lambda: fake.count("secret") >= 2, message="retried fetches")
        with pytest.raises(KeyvaultNotFoundError):
            client.get(primary)
        assert client.resolve("anthropic").version == 1
        assert client.status().cursor < fake.cursor  # the page is not done
        fake.clear_faults()
        wait_synced(client, fake)
        assert client.resolve("anthropic").version == 2


def test_a_fetch_that_finds_the_key_disabled_drops_it(make_client, fake, primary):
    with make_client() as client:
        fake.fail("secret", 409, body={"detail": "Disabled.", "code": "key_disabled"})
        fake.rotate(primary, "sk-primary-v2")
        wait_synced(client, fake)
        with pytest.raises(KeyvaultNotFoundError):
            client.get(primary)


def test_events_of_a_page_cost_one_fetch_per_key(make_client, fake, primary):
    other = fake.create("openai", "other", "sk-other")
    with make_client() as client:
        with fake.batch():
            fake.rotate(primary, "sk-primary-v2")
            fake.rotate(primary, "sk-primary-v3")
            fake.update(primary, config={"project": "proj_x"})
            fake.rotate(other, "sk-other-v2")
        wait_synced(client, fake)
        assert client.resolve("openai").version == 3
    assert fake.count("secret") == 2


def test_a_key_disabled_later_on_the_page_is_not_fetched(make_client, fake, primary):
    with make_client() as client:
        with fake.batch():
            fake.rotate(primary, "sk-primary-v2")
            fake.disable(primary)
        wait_synced(client, fake)
        with pytest.raises(KeyvaultNotFoundError):
            client.get(primary)
    assert fake.count("secret") == 0


def test_many_changes_at_once_are_applied_by_a_new_snapshot(make_client, fake, primary):
    others = [fake.create("openai", f"k{i}", f"sk-k{i}-v1") for i in range(6)]
    with make_client(snapshot_threshold=5) as client:
        with fake.batch():
            for key_id in others:
                fake.rotate(key_id, "sk-rotated")
        wait_synced(client, fake)
        assert {client.get(key_id).version for key_id in others} == {2}
    assert fake.count("secret") == 0
    assert fake.count("snapshot") == 2


def test_a_few_changes_among_many_keys_are_fetched_one_by_one(make_client, fake, primary):
    others = [fake.create("openai", f"k{i}", f"sk-k{i}-v1") for i in range(40)]
    with make_client(snapshot_threshold=5) as client:
        with fake.batch():
            for key_id in others[:6]:
                fake.rotate(key_id, "sk-rotated")
        wait_synced(client, fake)
        assert client.get(others[0]).version == 2
    assert fake.count("secret") == 6
    assert fake.count("snapshot") == 1


def test_pages_are_followed_until_caught_up(make_client, fake, primary):
    fake.page_size = 2
    with make_client() as client:
        with fake.batch():
            for version in range(2, 8):
                fake.rotate(primary, f"sk-primary-v{version}")
        wait_synced(client, fake)
        assert client.resolve("openai").version == 7


def test_unknown_event_types_are_ignored(make_client, fake, primary):
    with make_client() as client:
        fake.emit("key.health_changed", primary, health="degraded")
        wait_synced(client, fake)
        assert client.resolve("openai").key_id == primary
    assert fake.count("secret") == 0


def test_any_event_saying_disabled_drops_the_key(make_client, fake, primary):
    with make_client() as client:
        fake.emit("key.health_changed", primary, enabled=False)
        wait_synced(client, fake)
        with pytest.raises(KeyvaultNotFoundError):
            client.get(primary)


def test_a_malformed_event_is_not_skipped(make_client, fake, primary):
    """A `key.disabled` without a usable key id stops the feed there instead of being passed
    over: serving the key it was about would be the wrong way to fail."""
    with make_client() as client:
        fake.emit("key.disabled", "not-a-uuid")
        wait_until(lambda: client.status().error, message="a sync error")
        assert "key_id" in client.status().error
        assert client.status().cursor < fake.cursor


def test_an_expired_cursor_takes_a_new_snapshot(make_client, fake, primary):
    with make_client() as client:
        fake.stop()
        # While the client is away, a change happens whose event is then pruned.
        fake.rotate(primary, "sk-primary-v2")
        fake.expire_events()
        fake.start()
        wait_until(lambda: fake.count("snapshot") == 2, message="a second snapshot")
        wait_synced(client, fake)
        assert client.resolve("openai").version == 2


def test_nothing_is_served_between_an_expired_cursor_and_the_new_snapshot(
    make_client, fake, primary
):
    with make_client() as client:
        fake.fail("snapshot", 503, times=None)
        fake.expire_events()
        fake.emit("key.health_changed", primary)
        wait_until(lambda: fake.count("snapshot") >= 2, message="a snapshot attempt")
        with pytest.raises(KeyvaultStaleError, match="new snapshot"):
            client.resolve("openai")
        fake.clear_faults()
        wait_synced(client, fake)
        assert client.resolve("openai").key_id == primary


def test_a_key_keyvault_cannot_open_is_dropped_and_the_feed_moves_on(
    make_client, fake, primary, caplog
):
    other = fake.create("anthropic", "main", "sk-ant-main", is_default=True)
    with caplog.at_level(logging.ERROR, logger="keyvault_client"), make_client() as client:
        fake.damage(primary)
        fake.rotate(primary, "sk-primary-v2")  # the fetch of the new version answers 500
        fake.rotate(other, "sk-ant-main-2")
        wait_synced(client, fake)
        with pytest.raises(KeyvaultNotFoundError):
            client.get(primary)  # neither the new version (unreadable) nor the replaced one
        assert client.get(other).version == 2  # the rest of the feed was not held up
        assert client.status().error is None
    assert any("key_integrity_error" in r.getMessage() for r in caplog.records)
    assert fake.count("secret") == 2  # not retried


def test_other_server_errors_of_a_fetch_are_retried(make_client, fake, primary):
    with make_client() as client:
        fake.fail("secret", 500, times=2)
        fake.rotate(primary, "sk-primary-v2")
        wait_synced(client, fake)
        assert client.get(primary).version == 2
    assert fake.count("secret") == 3


def test_keys_the_snapshot_leaves_out_are_not_served_and_are_logged(
    make_client, fake, primary, caplog
):
    fake.damage(primary)
    other = fake.create("anthropic", "main", "sk-ant-main", is_default=True)
    with caplog.at_level(logging.ERROR, logger="keyvault_client"), make_client() as client:
        assert client.get(other).secret == "sk-ant-main"
        with pytest.raises(KeyvaultNotFoundError):
            client.resolve("openai")
    assert any(primary in r.getMessage() for r in caplog.records)
