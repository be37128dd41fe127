import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from keyvault import health, providers
from keyvault.fields import EnvelopeKekId, SecretField
from organizations.models import Organization

SECRET_MAX_BYTES = 16 * 1024
# What a `ProviderKey` must have loaded for its secret to be sealed or opened: the associated
# data binds the row, its organization and its routing settings (which need the provider).
SECRET_CONTEXT_FIELDS = ("id", "organization_id", "provider", "config", "secret", "kek_id")


class ProviderKey(models.Model):
    """One provider credential of an organization. The secret is envelope-encrypted.

    Write through `keyvault.services` only: it validates, computes the hint, bumps the version
    and records the audit event in one transaction.
    """

    # Assigned before the first save: the row id is part of the secret's associated data.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="provider_keys"
    )
    provider = models.CharField(max_length=32, choices=providers.CHOICES)
    name = models.CharField(max_length=100)
    # Bound to the routing settings of `config` (see `secret_binding`): pointing the key at
    # another host in the database makes it unopenable instead of sending it there.
    secret = SecretField(binding_method="secret_binding")
    # Which KEK wraps the data key, indexed so that status checks, the check that every needed
    # KEK is loaded, and KEK rotation find rows by KEK without reading every secret. The
    # database computes it from the envelope on every write, whoever writes (`save()`,
    # `update()`, `bulk_update()`, the rotation's SQL, a restore): a stale value could let an
    # operator retire a KEK that still wraps a secret, and no writer can now leave one.
    kek_id = models.GeneratedField(
        expression=EnvelopeKekId("secret"),
        output_field=models.CharField(max_length=64),
        db_persist=True,
        db_index=True,
    )
    secret_hint = models.CharField(max_length=64, editable=False)
    config = models.JSONField(default=dict, blank=True)
    is_default = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    # Place in its provider's pool (lower first, after the default): the order a proxy fails
    # over in (keyvault.health.pool_order).
    priority = models.PositiveIntegerField(default=100)
    version = models.PositiveIntegerField(default=1, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Health, as proxies report it and connection tests find it (keyvault.health). Written with
    # `update()`, never `save()`: a report must not move `updated_at`, which the secret's ETag
    # is derived from, or every report would invalidate every proxy's cached copy.
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    cooling_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_reported_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_check_ok = models.BooleanField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["provider", "name"]
        constraints = [
            models.UniqueConstraint(
                "organization",
                "provider",
                Lower("name"),
                name="provider_key_name_unique_per_org_and_provider",
            ),
            models.UniqueConstraint(
                fields=["organization", "provider"],
                condition=models.Q(is_default=True),
                name="provider_key_one_default_per_org_and_provider",
            ),
        ]

    def __str__(self):
        return f"{self.provider_obj.name}: {self.name} ({self.secret_hint})"

    def save(self, *args, **kwargs):
        updating = not self._state.adding
        super().save(*args, **kwargs)
        if updating:
            # Django reads generated columns (`kek_id`) back after an INSERT, not after an
            # UPDATE, which would leave the value loaded before on the instance. Forgotten,
            # each is read from the database on next access.
            for field in self._meta.concrete_fields:
                if field.generated:
                    self.__dict__.pop(field.attname, None)

    @property
    def health(self) -> str:
        """`failing`, `cooling`, `ok` or `unchecked` (keyvault.health.health_of)."""
        return health.health_of(self)

    @property
    def stale(self) -> bool:
        """Not used for `KEYVAULT_STALE_DAYS` days (keyvault.health.is_stale)."""
        return health.is_stale(self)

    @property
    def provider_obj(self) -> providers.Provider:
        return providers.get_provider(self.provider)

    @property
    def served_config(self) -> dict:
        """The config as proxies receive it: only settings the provider's schema knows."""
        return providers.served_config(self.provider_obj, self.config)

    def secret_binding(self) -> str:
        """What the secret's envelope is bound to: where the secret is sent."""
        return providers.secret_binding(self.provider_obj, self.config)


class ProxyToken(models.Model):
    """A bearer token a proxy uses to read (and optionally manage) one organization's keys.

    Only the SHA-256 digest of the token is stored (see `core.tokens`); the token itself is
    shown once, at creation. Revoking sets `revoked_at` and keeps the row for the audit trail.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="proxy_tokens"
    )
    name = models.CharField(max_length=100)
    scopes = models.JSONField(default=list)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    last_four = models.CharField(max_length=4, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    # DRF sets `request.user` to the authenticated principal; a token is one.
    is_authenticated = True

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                "organization",
                Lower("name"),
                condition=models.Q(revoked_at__isnull=True),
                name="proxy_token_active_name_unique_per_org",
            ),
        ]

    def __str__(self):
        return f"{self.name} (…{self.last_four})"

    def __repr__(self):
        return f"<ProxyToken {self.name!r} …{self.last_four}>"

    def refusal(self, now=None) -> str | None:
        """Why the token may not be used now (`"revoked"`, `"expired"`), or None: the one rule
        for a token's validity, which authentication and every listing ask."""
        from django.utils import timezone

        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or timezone.now()):
            return "expired"
        return None

    @property
    def is_active(self) -> bool:
        return self.refusal() is None


class KeyUsage(models.Model):
    """Secret retrievals per token, key and hour; written in batches by `keyvault.usage`."""

    token = models.ForeignKey(ProxyToken, on_delete=models.CASCADE, related_name="usage")
    # Kept when the key is deleted: the record that its secret was fetched outlives it.
    key = models.ForeignKey(ProviderKey, null=True, on_delete=models.SET_NULL, related_name="usage")
    hour = models.DateTimeField()
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-hour"]
        constraints = [
            models.UniqueConstraint(
                fields=["token", "key", "hour"], name="key_usage_one_row_per_token_key_hour"
            )
        ]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H}:00 {self.count}"

    @classmethod
    def add_counts(cls, rows) -> None:
        """Add `(token_id, key_id, hour, count)` rows to the stored counts.

        `INSERT … ON CONFLICT DO UPDATE SET count = count + excluded.count` is one statement on
        both PostgreSQL and SQLite, and additive, so concurrent flushes from several app
        instances add up instead of overwriting each other.
        """
        from django.db import connection

        fields = [cls._meta.get_field(name) for name in ("token", "key", "hour", "count")]
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        table = connection.ops.quote_name(cls._meta.db_table)
        count_column = connection.ops.quote_name("count")
        # Only identifiers from the model's own metadata are interpolated; values are parameters.
        sql = (
            f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s) "  # noqa: S608
            f"ON CONFLICT ({', '.join(connection.ops.quote_name(f.column) for f in fields[:3])}) "
            f"DO UPDATE SET {count_column} = {table}.{count_column} + excluded.{count_column}"
        )
        params = [
            [
                field.get_db_prep_value(value, connection)
                for field, value in zip(fields, row, strict=True)
            ]
            for row in rows
        ]
        with connection.cursor() as cursor:
            cursor.executemany(sql, params)


class KeyReportCount(models.Model):
    """Reports a proxy made about a key, per hour: all of them, and those that said the provider
    refused the key, limited or failed it (401, 403, 429, 5xx). Written by `keyvault.health`."""

    key = models.ForeignKey(ProviderKey, on_delete=models.CASCADE, related_name="report_counts")
    hour = models.DateTimeField()
    reports = models.PositiveBigIntegerField(default=0)
    failures = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-hour"]
        constraints = [
            models.UniqueConstraint(fields=["key", "hour"], name="key_report_one_row_per_key_hour")
        ]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H}:00 {self.failures}/{self.reports}"

    @classmethod
    def add(cls, *, key_id, at, failures: int) -> None:
        """Count one report (a failure when `failures` is 1) in its hour, with one additive
        `INSERT … ON CONFLICT DO UPDATE` (as `KeyUsage.add_counts`)."""
        from django.db import connection

        hour = at.replace(minute=0, second=0, microsecond=0)
        fields = [cls._meta.get_field(name) for name in ("key", "hour", "reports", "failures")]
        quote = connection.ops.quote_name
        columns = ", ".join(quote(f.column) for f in fields)
        table = quote(cls._meta.db_table)
        reports, failed = quote("reports"), quote("failures")
        # Only identifiers from the model's own metadata are interpolated; values are parameters.
        sql = (
            f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s) "  # noqa: S608
            f"ON CONFLICT ({quote(fields[0].column)}, {quote(fields[1].column)}) "
            f"DO UPDATE SET {reports} = {table}.{reports} + excluded.{reports}, "
            f"{failed} = {table}.{failed} + excluded.{failed}"
        )
        values = [key_id, hour, 1, failures]
        params = [
            field.get_db_prep_value(value, connection)
            for field, value in zip(fields, values, strict=True)
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


class KeyEventType(models.TextChoices):
    """What happened to a key, as the event feed names it (docs/api.md, "Event feed")."""

    CREATED = "key.created"
    UPDATED = "key.updated"
    ROTATED = "key.rotated"
    ENABLED = "key.enabled"
    DISABLED = "key.disabled"
    DELETED = "key.deleted"
    # Proxies' reports or a connection test changed the key's health (keyvault.health).
    HEALTH_CHANGED = "key.health_changed"


class EventFeed(models.Model):
    """One organization's place in its event feed: the number of its latest event and the
    latest one retention has pruned. Written by `keyvault.events` only.

    The row is the feed's lock: every writer takes it `FOR UPDATE` to number its event, so an
    organization's events commit in the order of their numbers (docs/decisions.md, "The event
    feed").
    """

    organization = models.OneToOneField(
        Organization, primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    last_event = models.BigIntegerField(default=0)
    # Events up to this number are pruned: a cursor below it has missed some.
    pruned_through = models.BigIntegerField(default=0)

    def __str__(self):
        return f"feed at {self.last_event} (pruned through {self.pruned_through})"


class KeyEvent(models.Model):
    """One change to a provider key, written in the transaction of the change (an outbox).

    Holds what a proxy's cache needs to act on and nothing secret: no secret, no hint, no
    config. The key is named by id, not by foreign key: its `key.deleted` event outlives it.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # The cursor: numbered per organization, 1, 2, 3, … with no gaps.
    number = models.BigIntegerField()
    type = models.CharField(max_length=32, choices=KeyEventType.choices)
    key_id = models.UUIDField()
    provider = models.CharField(max_length=32)
    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    is_default = models.BooleanField()
    enabled = models.BooleanField()
    occurred_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["organization", "number"]
        constraints = [
            # Also the index every page of the feed is read by.
            models.UniqueConstraint(
                fields=["organization", "number"], name="key_event_number_unique_per_org"
            )
        ]

    def __str__(self):
        return f"{self.number} {self.type} {self.key_id}"
