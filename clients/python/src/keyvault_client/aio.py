"""`AsyncKeyvaultClient`: the same cache for asyncio code.

Reads are memory lookups that never wait for the network, so they run on the event loop
directly; only starting and closing (which wait for the first snapshot and for the thread)
go to a worker thread. Syncing stays on the client's own thread.
"""

import asyncio

from keyvault_client.client import ClientStatus, KeyvaultClient
from keyvault_client.credential import Credential


class AsyncKeyvaultClient:
    """Takes the arguments of `KeyvaultClient`; use `async with` or `await start()`."""

    def __init__(self, url: str, token: str, **options):
        self.sync_client = KeyvaultClient(url, token, **options)

    def __repr__(self) -> str:
        return f"AsyncKeyvaultClient(url={self.sync_client.url!r})"

    async def start(self, timeout: float | None = None) -> "AsyncKeyvaultClient":
        await asyncio.to_thread(self.sync_client.start, timeout)
        return self

    async def close(self) -> None:
        await asyncio.to_thread(self.sync_client.close)

    async def __aenter__(self) -> "AsyncKeyvaultClient":
        return await self.start()

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def resolve(self, provider: str, name: str | None = None) -> Credential:
        await self._start_if_needed()
        return self.sync_client.resolve(provider, name)

    async def get(self, key_id) -> Credential:
        await self._start_if_needed()
        return self.sync_client.get(key_id)

    async def credentials(self, provider: str | None = None) -> list[Credential]:
        await self._start_if_needed()
        return self.sync_client.credentials(provider)

    def status(self) -> ClientStatus:
        return self.sync_client.status()

    async def _start_if_needed(self) -> None:
        # Without this the first read would start the client, blocking the event loop.
        if not self.sync_client.started:
            await self.start()
