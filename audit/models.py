from django.conf import settings
from django.db import models


class AuditEventQuerySet(models.QuerySet):
    """Append-only: rows are created, never updated or deleted through the ORM."""

    def update(self, **kwargs):
        raise TypeError("Audit events are append-only.")

    def delete(self):
        raise TypeError("Audit events are append-only.")


class AuditEvent(models.Model):
    """Who did what to which target, when and from where. Never holds a secret or a token."""

    # By app label, not by import: the audit app sits beneath `organizations` and imports none
    # of it. The database still enforces the reference, and deleting an organization still
    # clears it, as deleting a user does.
    organization = models.ForeignKey(
        "organizations.Organization",
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
    # The proxy token that acted, by id only. A foreign key would point up at `keyvault`, the
    # top layer, for nothing the trail needs: `actor_label` already names the token
    # ("token <name> (…abcd)"), nothing joins through this column, and a plain id keeps saying
    # which token it was after the token is deleted with its organization (the key used to be
    # set to NULL then). The column keeps the name and values the foreign key gave it.
    actor_token_id = models.UUIDField(null=True, blank=True, db_index=True)
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
        # The table the model had when it lived in `keyvault`: moving it between apps moved
        # no row (audit/migrations/0001_initial.py).
        db_table = "keyvault_auditevent"
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Audit events are append-only.")
