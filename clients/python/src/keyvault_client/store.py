"""The credentials in memory, indexed the three ways they are looked up.

Not thread-safe by itself: the client holds its lock around every call, and the only writer is
its sync thread.
"""

from dataclasses import replace

from keyvault_client.credential import Credential
from keyvault_client.wire import fold_name


class Store:
    def __init__(self):
        self._by_id: dict[str, Credential] = {}
        self._by_name: dict[tuple[str, str], str] = {}
        self._default: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, key_id: str) -> Credential | None:
        return self._by_id.get(key_id)

    def default(self, provider: str) -> Credential | None:
        key_id = self._default.get(provider)
        return None if key_id is None else self._by_id.get(key_id)

    def named(self, provider: str, folded_name: str) -> Credential | None:
        key_id = self._by_name.get((provider, folded_name))
        return None if key_id is None else self._by_id.get(key_id)

    def all(self) -> list[Credential]:
        return sorted(self._by_id.values(), key=lambda c: (c.provider, fold_name(c.name), c.key_id))

    def replace_all(self, credentials: list[Credential]) -> None:
        self.clear()
        for credential in credentials:
            self.put(credential)

    def clear(self) -> None:
        self._by_id.clear()
        self._by_name.clear()
        self._default.clear()

    def put(self, credential: Credential) -> None:
        """Add or replace a key. Keyvault allows one default per provider and one key per name:
        a key that arrives holding either takes it over from whichever key held it (whose own
        event, on its way, will describe it again)."""
        self.drop(credential.key_id)
        self._by_id[credential.key_id] = credential
        self._by_name[(credential.provider, fold_name(credential.name))] = credential.key_id
        if credential.is_default:
            previous = self.default(credential.provider)
            if previous is not None:
                self._by_id[previous.key_id] = replace(previous, is_default=False)
            self._default[credential.provider] = credential.key_id

    def drop(self, key_id: str) -> bool:
        credential = self._by_id.pop(key_id, None)
        if credential is None:
            return False
        name_key = (credential.provider, fold_name(credential.name))
        if self._by_name.get(name_key) == key_id:
            del self._by_name[name_key]
        if self._default.get(credential.provider) == key_id:
            del self._default[credential.provider]
        return True
