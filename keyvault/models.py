import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from keyvault import providers
from keyvault.fields import SecretField
from organizations.models import Organization

SECRET_MAX_BYTES = 16 * 1024


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
    secret = SecretField(kek_id_field="kek_id")
    # Which KEK wraps the data key, kept beside the envelope so that status checks and KEK
    # rotation find rows by KEK without reading every secret.
    kek_id = models.CharField(max_length=64, db_index=True, editable=False)
    secret_hint = models.CharField(max_length=64, editable=False)
    config = models.JSONField(default=dict, blank=True)
    is_default = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
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

    @property
    def provider_obj(self) -> providers.Provider:
        return providers.get_provider(self.provider)


class AuditEventQuerySet(models.QuerySet):
    """Append-only: rows are created, never updated or deleted through the ORM."""

    def update(self, **kwargs):
        raise TypeError("Audit events are append-only.")

    def delete(self):
        raise TypeError("Audit events are append-only.")


class AuditEvent(models.Model):
    """Who did what to which target, when and from where. Never holds a secret or a token."""

    organization = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_events",
    )
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Kept as text too, so the trail still reads after a user or organization is deleted.
    actor_label = models.CharField(max_length=254)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Audit events are append-only.")
