"""The asyncio variant: the same cache, awaited."""

import asyncio

import pytest
from conftest import FAST
from fake_keyvault import TOKEN, wait_synced

from keyvault_client import AsyncKeyvaultClient, KeyvaultClosedError, KeyvaultNotFoundError


def test_async_client_resolves_follows_changes_and_closes(fake):
    key_id = fake.create("azure_openai", "eastus", "az-v1", is_default=True)

    async def scenario():
        async with AsyncKeyvaultClient(fake.url, TOKEN, **FAST) as client:
            first = await client.resolve("azure-openai", name="eastus")
            fake.rotate(key_id, "az-v2")
            await asyncio.to_thread(wait_synced, client.sync_client, fake)
            second = await client.get(key_id)
            fake.disable(key_id)
            await asyncio.to_thread(wait_synced, client.sync_client, fake)
            with pytest.raises(KeyvaultNotFoundError):
                await client.resolve("azure_openai")
        with pytest.raises(KeyvaultClosedError):
            await client.resolve("azure_openai")
        return first, second

    first, second = asyncio.run(scenario())
    assert (first.secret, second.secret, second.version) == ("az-v1", "az-v2", 2)


def test_async_client_starts_on_first_read_without_blocking_the_loop(fake):
    fake.create("openai", "primary", "sk-v1", is_default=True)

    async def scenario():
        client = AsyncKeyvaultClient(fake.url, TOKEN, **FAST)
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        fake.fail("snapshot", 503, times=3)  # the start takes a few retries
        credential = await client.resolve("openai")
        task.cancel()
        await client.close()
        return credential, ticks

    credential, ticks = asyncio.run(scenario())
    assert credential.secret == "sk-v1"
    assert ticks > 1  # the loop kept running while the client started
