"""The event feed: every change to an organization's keys, in order, for proxies' caches.

- Writing: `record_key_event(key, type)` is the one way an event is written. Services call it
  inside the transaction of the change, as its last write (an outbox): the event commits with
  the change or not at all, so a rolled-back write leaves none.
- Reading: `events_after` (a page of the feed after a cursor) and `snapshot_keys` (the enabled
  keys with the cursor they are current at); `keyvault.event_wait` parks a request until the
  feed moves, `keyvault.retrieval` opens a snapshot's secrets.
- Retention: `prune_events`, run by the `prune_events` command.

Each organization numbers its own events 1, 2, 3, … on its `EventFeed` row, locked `FOR UPDATE`
by each writer: one organization's events commit in the order of their numbers, so a reader
that has seen number n has seen every number below it, and the numbers say nothing about any
other organization (docs/decisions.md, "The event feed").
"""

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from keyvault import providers
from keyvault.errors import CursorExpiredError
from keyvault.models import EventFeed, KeyEvent, KeyEventType, ProviderKey

# PostgreSQL's NOTIFY channel; the payload is the organization's id.
CHANNEL = "keyvault_events"
PAGE_SIZE = 500
# The shortest retention there may be: a proxy that was down over a weekend must still find its
# place in the feed.
MIN_RETENTION_DAYS = 7
# Events deleted per transaction while pruning: each holds the organization's feed row.
PRUNE_BATCH = 5000


# --- Writing ---------------------------------------------------------------------------------


def record_key_event(key: ProviderKey, type: KeyEventType | str) -> KeyEvent:
    """Write the event of a change to `key`, numbered next in its organization's feed.

    Call it inside the transaction that changes the key, after the change (the key as it is
    now; for a deletion, the key as it was), once per change, with the change's most specific
    type. Its lock on the feed row is the transaction's last, and held only until the commit.
    Waiting readers are woken when the transaction commits, and never if it rolls back.
    """
    type = KeyEventType(type)
    if not transaction.get_connection().in_atomic_block:
        # Outside a transaction the event could commit without the change, or the other way.
        raise RuntimeError("record_key_event must run in the transaction of the change")
    feed = _feed_for_update(key.organization_id)
    feed.last_event += 1
    feed.save(update_fields=["last_event"])
    event = KeyEvent.objects.create(
        organization_id=key.organization_id,
        number=feed.last_event,
        type=type,
        key_id=key.pk,
        provider=key.provider,
        name=key.name,
        version=key.version,
        is_default=key.is_default,
        enabled=key.enabled,
        occurred_at=timezone.now(),
    )
    _announce(key.organization_id)
    return event


def _feed_for_update(organization_id) -> EventFeed:
    feed = EventFeed.objects.select_for_update().filter(pk=organization_id).first()
    if feed is None:
        # The organization's first event. Two first writers both insert; the second waits for
        # the first to commit, inserts nothing, and then locks the row the first created.
        _ensure_feed(organization_id)
        feed = EventFeed.objects.select_for_update().get(pk=organization_id)
    return feed


def _ensure_feed(organization_id) -> None:
    EventFeed.objects.bulk_create(
        [EventFeed(organization_id=organization_id)], ignore_conflicts=True
    )


def _announce(organization_id) -> None:
    if connection.vendor == "postgresql":
        # Delivered to listeners when the transaction commits, dropped if it rolls back.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, str(organization_id)])
    else:
        from keyvault import event_wait

        organization_id = str(organization_id)
        transaction.on_commit(lambda: event_wait.room.wake(organization_id))


# --- Reading ---------------------------------------------------------------------------------


def events_after(*, organization_id, after: int, limit: int = PAGE_SIZE):
    """The organization's events numbered above `after`, oldest first, at most `limit`, and the
    cursor to ask from next (the last event's number; `after` when there are none).

    Raises `CursorExpiredError` when events after `after` were pruned, and for a cursor the
    feed never handed out (above its latest number, as after a database restore): either way
    the caller's copy can no longer be brought up to date by events, only by a new snapshot.
    """
    events = list(
        KeyEvent.objects.filter(organization_id=organization_id, number__gt=after).order_by(
            "number"
        )[:limit]
    )
    # Read after the events: a prune committed in between raises the watermark, and the page
    # is refused rather than handed out with a hole (the events read may be the pruned ones).
    last_event, pruned_through = _position(organization_id)
    if after < pruned_through:
        raise CursorExpiredError(
            f"Events after cursor {after} are no longer kept (the feed keeps "
            f"{settings.KEYVAULT_EVENTS_RETENTION_DAYS} days); take a new snapshot."
        )
    if after > last_event:
        raise CursorExpiredError(
            f"Cursor {after} is ahead of this organization's feed; take a new snapshot."
        )
    return events, (events[-1].number if events else after)


def _position(organization_id) -> tuple[int, int]:
    row = (
        EventFeed.objects.filter(pk=organization_id)
        .values_list("last_event", "pruned_through")
        .first()
    )
    return row or (0, 0)


def current_cursor(organization_id) -> int:
    return _position(organization_id)[0]


def snapshot_keys(*, organization_id, provider: str | None = None):
    """The organization's enabled keys (of `provider` if given), and the cursor they are
    current at: every event up to it is reflected in the keys, none after it.

    Read in one transaction under a share lock of the feed row, which every writer takes
    exclusively before it commits: no change can commit between reading the cursor and reading
    the keys. The lock is held for the two reads only (decrypting comes after).
    """
    if provider:
        providers.get_provider(provider)
    with transaction.atomic():
        cursor = _cursor_share_locked(organization_id)
        keys = ProviderKey.objects.filter(organization_id=organization_id, enabled=True)
        if provider:
            keys = keys.filter(provider=provider)
        keys = list(keys.order_by("provider", "name", "id"))
    return cursor, keys


def _cursor_share_locked(organization_id) -> int:
    if connection.vendor != "postgresql":
        # SQLite runs one writing transaction at a time and this one reads from one database
        # snapshot: nothing commits between its reads.
        return current_cursor(organization_id)
    table = connection.ops.quote_name(EventFeed._meta.db_table)
    column = connection.ops.quote_name(EventFeed._meta.pk.column)
    last = connection.ops.quote_name(EventFeed._meta.get_field("last_event").column)
    sql = f"SELECT {last} FROM {table} WHERE {column} = %s FOR SHARE"  # noqa: S608
    param = EventFeed._meta.pk.get_db_prep_value(organization_id, connection)
    for _attempt in range(2):
        with connection.cursor() as cursor:
            cursor.execute(sql, [param])
            row = cursor.fetchone()
        if row is not None:
            return row[0]
        # No event yet: the row is created, so that a first writer racing this read is waited
        # for (its insert of the row conflicts with ours) instead of slipping in between.
        _ensure_feed(organization_id)
    raise AssertionError("the feed row exists after _ensure_feed")


# --- Retention -------------------------------------------------------------------------------


def retention() -> timedelta:
    return timedelta(days=settings.KEYVAULT_EVENTS_RETENTION_DAYS)


def prune_events(*, now=None) -> int:
    """Delete the events older than the retention (`KEYVAULT_EVENTS_RETENTION_DAYS`), raising
    each organization's watermark to the last number deleted; how many were deleted.

    A cursor below the watermark has missed events and answers `cursor_expired`; one at or
    above it has missed none. Batches of `PRUNE_BATCH` events, each its own transaction.
    """
    days = settings.KEYVAULT_EVENTS_RETENTION_DAYS
    if days < MIN_RETENTION_DAYS:
        raise ValueError(
            f"KEYVAULT_EVENTS_RETENTION_DAYS is {days}; events are kept at least "
            f"{MIN_RETENTION_DAYS} days."
        )
    cutoff = (now or timezone.now()) - retention()
    old = KeyEvent.objects.filter(occurred_at__lt=cutoff)
    deleted = 0
    for organization_id, through in (
        old.order_by()
        .values("organization_id")
        .annotate(through=Max("number"))
        .values_list("organization_id", "through")
    ):
        deleted += _prune_organization(organization_id, through)
    return deleted


def _prune_organization(organization_id, through: int) -> int:
    deleted = 0
    while True:
        with transaction.atomic():
            feed = EventFeed.objects.select_for_update().filter(pk=organization_id).first()
            if feed is None or feed.pruned_through >= through:
                return deleted
            upto = min(through, feed.pruned_through + PRUNE_BATCH)
            count, _ = KeyEvent.objects.filter(
                organization_id=organization_id, number__lte=upto
            ).delete()
            feed.pruned_through = upto
            feed.save(update_fields=["pruned_through"])
        deleted += count
