"""Many readers while updates flow."""

import threading

from fake_keyvault import wait_synced

ROTATIONS = 30
READERS = 8


def test_readers_see_whole_credentials_in_order_while_keys_rotate(make_client, fake):
    key_id = fake.create("openai", "primary", "sk-v1", is_default=True)
    client = make_client().start()
    stop = threading.Event()
    problems = []
    seen = [set() for _ in range(READERS)]

    def read(index):
        last = 0
        while not stop.is_set():
            try:
                credential = client.resolve("openai")
                by_id = client.get(key_id)
            except Exception as exc:
                problems.append(repr(exc))
                return
            # The secret always belongs to the version beside it, and no reader goes back.
            if credential.secret != f"sk-v{credential.version}" or credential.version < last:
                problems.append(f"reader {index}: version {credential.version} after {last}")
                return
            if by_id.version < credential.version:
                problems.append(f"reader {index}: get behind resolve")
                return
            last = credential.version
            seen[index].add(last)

    readers = [threading.Thread(target=read, args=(i,)) for i in range(READERS)]
    for reader in readers:
        reader.start()
    try:
        for version in range(2, ROTATIONS + 2):
            fake.rotate(key_id, f"sk-v{version}")
            if version % 5 == 0:
                wait_synced(client, fake)
        wait_synced(client, fake)
        final = client.resolve("openai").version
        # Give every reader the chance to see the final version before stopping.
        deadline = threading.Event()
        for _ in range(500):
            if all(final in versions for versions in seen) or problems:
                break
            deadline.wait(0.01)
    finally:
        stop.set()
        for reader in readers:
            reader.join()
        client.close()
    assert problems == []
    assert final == ROTATIONS + 1
    assert all(final in versions for versions in seen)
