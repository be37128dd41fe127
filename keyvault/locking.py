"""One lock order for every writer, so that no two writers can deadlock.

A transaction that locks several rows takes them in this order, and never the other way round:

1. provider keys, in primary-key order;
2. proxy tokens, in primary-key order;
3. usage rows (`KeyUsage`), in (token, key, hour) order;
4. the organization's event feed row (`EventFeed`), `FOR UPDATE` by `keyvault.events`
   as the last write of every key change, so its lock, which all of an organization's key
   writers share, is held only from there to the commit;
5. the organization row, last: by the organization's deletion, and by the foreign-key checks
   PostgreSQL runs at commit for new rows that reference it (Django's constraints are
   deferred), which come after everything a transaction did.

Two transactions that take their locks in one order cannot each hold what the other waits
for. The row locks themselves are taken here, explicitly, before the writes: the order in
which an `UPDATE` or `DELETE` reaches rows depends on its plan (heap order for a sequential
scan), and Django's deletion collector writes the children (usage rows) before the parents.
`docs/decisions.md` ("One lock order for every writer") lists who takes what.

Only PostgreSQL has row locks; SQLite writes one transaction at a time (they start
`IMMEDIATE`), and `select_for_update` does nothing there.
"""

from keyvault.models import ProviderKey, ProxyToken


def _locked_ids(rows, *, for_delete: bool) -> set:
    # ORDER BY runs before the locking clause: the rows are locked one by one in that order.
    # FOR NO KEY UPDATE is the lock an UPDATE of non-key columns takes anyway: taken up front,
    # the writer never asks again for a stronger lock on a row it holds, which would queue it
    # behind whoever came meanwhile. A delete needs FOR UPDATE.
    rows = rows.order_by("pk").select_for_update(no_key=not for_delete)
    return set(rows.values_list("pk", flat=True))


def lock_keys(ids, *, for_delete: bool = False) -> set:
    """Lock the provider keys `ids` in primary-key order (step 1); the ids that still exist
    (a key deleted meanwhile is skipped once its deleter commits)."""
    if not ids:
        return set()
    return _locked_ids(ProviderKey.objects.filter(pk__in=ids), for_delete=for_delete)


def lock_tokens(ids, *, for_delete: bool = False) -> set:
    """Lock the proxy tokens `ids` in primary-key order (step 2); the ids that still exist."""
    if not ids:
        return set()
    return _locked_ids(ProxyToken.objects.filter(pk__in=ids), for_delete=for_delete)


def lock_organization_contents(organization_id) -> None:
    """Before an organization is deleted: its keys, then its tokens, each in primary-key
    order. Django's deletion then writes their usage rows first (children before parents):
    without these locks it could hold usage rows a usage flush holds the key of, and each
    would wait for the other."""
    _locked_ids(ProviderKey.objects.filter(organization_id=organization_id), for_delete=True)
    _locked_ids(ProxyToken.objects.filter(organization_id=organization_id), for_delete=True)
