"""What apps above `organizations` keep per organization, locked before it is deleted.

Deleting an organization deletes the keys and tokens of `keyvault`, which sits above this app
and is not imported here: keyvault registers its lock (`keyvault.locking.
lock_organization_contents`) when it is loaded, and `organization_delete` runs what is
registered, in registration order, before it deletes anything. The lock order every writer
keeps is keyvault.locking's.
"""

from collections.abc import Callable

_locks: list[Callable[[object], None]] = []


def register_contents_lock(lock: Callable[[object], None]) -> None:
    """Run `lock(organization_id)` in every organization deletion, before anything is
    deleted. Registering the same lock again changes nothing."""
    if lock not in _locks:
        _locks.append(lock)


def lock_contents(organization_id) -> None:
    for lock in _locks:
        lock(organization_id)
