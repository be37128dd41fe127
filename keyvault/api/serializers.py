"""Shapes of the API's JSON. Input serializers check types and presence only; every rule about
values (provider catalog, config schema, secret size, uniqueness) is the services' job."""

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from keyvault import health, providers
from keyvault.models import KeyEventType

PROVIDER_IDS = [provider.id for provider in providers.PROVIDERS]
PROVIDER_SCHEMA = {"type": "string", "enum": PROVIDER_IDS}


class StrictCharField(serializers.CharField):
    """A string and nothing else: DRF's CharField would turn 42 or true into text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(PROVIDER_SCHEMA)
class ProviderIdField(StrictCharField):
    """A provider id; the schema lists the catalog, the services judge the value."""


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only, not "yes", 1 or "on"."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


def _printable(name) -> str:
    """A caller's field name, safe to echo in JSON: escaped where it is not valid text (a lone
    surrogate cannot be encoded) and cut short."""
    return str(name)[:40].encode("utf-8", "backslashreplace").decode("utf-8")


class NoUnknownFieldsMixin:
    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {_printable(name): ["This field is not recognised."] for name in unknown}
                )
        return super().to_internal_value(data)


def _datetime(value) -> str | None:
    """As DRF renders a DateTimeField: ISO 8601 in the current time zone, UTC as `Z`."""
    if value is None:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def key_metadata(key) -> dict:
    """A key's metadata as every answer of the API shows it: the one rendering of a key (the
    list, one key, the writes, the secret responses). New fields go here and into
    `ProviderKeySerializer`, which describes them in the schema; tests/test_api_keys.py checks
    the two agree.

    Written out rather than left to DRF's fields, which cost more per key than decrypting it:
    this is on every secret retrieval's path.
    """
    return {
        "id": str(key.pk),
        "provider": key.provider,
        "name": key.name,
        "hint": key.secret_hint,
        "config": {str(name): str(value) for name, value in key.served_config.items()},
        "is_default": bool(key.is_default),
        "enabled": bool(key.enabled),
        "priority": int(key.priority),
        "version": int(key.version),
        "created_at": _datetime(key.created_at),
        "updated_at": _datetime(key.updated_at),
        "rotated_at": _datetime(key.rotated_at),
        "last_used_at": _datetime(key.last_used_at),
        "health": key.health,
        "cooling_until": _datetime(key.cooling_until),
        "last_checked_at": _datetime(key.last_checked_at),
        "last_check_ok": key.last_check_ok,
        "stale": bool(key.stale),
    }


class ProviderKeySerializer(serializers.Serializer):
    """A key's metadata: everything but the secret. Its fields describe it in the schema; the
    answers are rendered by `key_metadata`."""

    id = serializers.UUIDField()
    provider = ProviderIdField()
    name = serializers.CharField()
    hint = serializers.CharField(source="secret_hint", help_text="Masked secret, e.g. sk-…4f2a")
    config = serializers.DictField(child=serializers.CharField(), source="served_config")
    is_default = serializers.BooleanField()
    enabled = serializers.BooleanField()
    priority = serializers.IntegerField(help_text="Place in the provider's pool, lower first.")
    version = serializers.IntegerField(help_text="Bumped whenever the secret changes.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    rotated_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    health = serializers.ChoiceField(choices=health.HEALTH_STATES)
    cooling_until = serializers.DateTimeField(allow_null=True)
    last_checked_at = serializers.DateTimeField(allow_null=True)
    last_check_ok = serializers.BooleanField(allow_null=True)
    stale = serializers.BooleanField(
        help_text="Not used for KEYVAULT_STALE_DAYS days (90 by default)."
    )


class ProviderKeyPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ProviderKeySerializer(many=True)


class ProviderKeySecretSerializer(ProviderKeySerializer):
    secret = serializers.CharField(help_text="The decrypted secret.")


class PoolSerializer(serializers.Serializer):
    provider = ProviderIdField()
    keys = ProviderKeySecretSerializer(many=True, help_text="The available keys, in pool order.")


class StrictIntegerField(serializers.IntegerField):
    """A JSON number that is whole, and nothing else: not "5", 5.0 or true."""

    def to_internal_value(self, data):
        if not isinstance(data, int) or isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class ReportSerializer(NoUnknownFieldsMixin, serializers.Serializer):
    status = StrictIntegerField(
        min_value=100, max_value=599, help_text="What the provider answered."
    )
    retry_after = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        help_text="Seconds until the provider takes the key again (429, 5xx); 60 when absent, "
        "an hour at most.",
    )


class HealthSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    health = serializers.ChoiceField(choices=health.HEALTH_STATES)
    cooling_until = serializers.DateTimeField(allow_null=True)
    failing_since = serializers.DateTimeField(allow_null=True)
    last_reported_at = serializers.DateTimeField(allow_null=True)


class ConnectionTestSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    status = serializers.IntegerField(allow_null=True, help_text="The provider's HTTP status.")
    detail = serializers.CharField()
    checked_at = serializers.DateTimeField()


class ProviderKeyCreateSerializer(NoUnknownFieldsMixin, serializers.Serializer):
    provider = ProviderIdField(trim_whitespace=False)
    name = StrictCharField(trim_whitespace=False, max_length=200)
    secret = StrictCharField(trim_whitespace=False, write_only=True)
    config = serializers.DictField(required=False, default=dict)
    is_default = StrictBooleanField(required=False, default=False)
    enabled = StrictBooleanField(required=False, default=True)
    priority = StrictIntegerField(required=False, default=100)


class ProviderKeyUpdateSerializer(NoUnknownFieldsMixin, serializers.Serializer):
    name = StrictCharField(required=False, trim_whitespace=False, max_length=200)
    config = serializers.DictField(required=False)
    is_default = StrictBooleanField(required=False)
    enabled = StrictBooleanField(required=False)
    priority = StrictIntegerField(required=False)
    secret = StrictCharField(
        required=False,
        trim_whitespace=False,
        write_only=True,
        help_text="A new secret: rotates the key and bumps its version.",
    )


class KeyEventSerializer(serializers.Serializer):
    """One event of the feed: what changed, never a secret or a hint of one."""

    id = serializers.IntegerField(
        source="number", help_text="The cursor: increasing, numbered per organization."
    )
    type = serializers.ChoiceField(choices=KeyEventType.choices)
    key_id = serializers.UUIDField()
    provider = ProviderIdField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    is_default = serializers.BooleanField()
    enabled = serializers.BooleanField()
    occurred_at = serializers.DateTimeField()


class EventPageSerializer(serializers.Serializer):
    events = KeyEventSerializer(many=True)
    cursor = serializers.IntegerField(
        help_text="Ask for the events after this next (the last event's id, else `after`)."
    )


class UnavailableKeySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    code = serializers.CharField(help_text="key_integrity_error")


class SnapshotSerializer(serializers.Serializer):
    cursor = serializers.IntegerField(help_text="Follow the event feed from here.")
    keys = ProviderKeySecretSerializer(many=True)
    unavailable = UnavailableKeySerializer(
        many=True, help_text="Enabled keys left out: their stored value failed its check."
    )


class PingSerializer(serializers.Serializer):
    organization = serializers.CharField()
    token = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())


class ErrorSerializer(serializers.Serializer):
    """Every error answer: `detail` always, `errors` on 400, `code` where a client branches."""

    detail = serializers.CharField()
    code = serializers.CharField(
        required=False,
        help_text="key_disabled, key_integrity_error, cursor_expired, no_available_key",
    )
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Field name to messages (400 only).",
    )
