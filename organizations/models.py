import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from organizations import roles


class Organization(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=50, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=roles.CHOICES)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization__name", "user__email"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organization"], name="membership_one_per_user_and_org"
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=[role.id for role in roles.ROLES]),
                name="membership_role_known",
            ),
        ]

    def __str__(self):
        return f"{self.user} in {self.organization} ({self.role})"

    @property
    def role_obj(self) -> roles.Role:
        return roles.get_role(self.role)


class Invitation(models.Model):
    """An emailed link that lets one person join an organization with a role.

    Only the SHA-256 digest of the link's token is stored (see `organizations.invitations`); the
    token itself is returned once, to be sent. Accepting or revoking stamps the row, which stays
    for the record; at most one invitation per address and organization is pending at a time.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invitations"
    )
    # Lowercased by the services, so lookups and the pending-uniqueness rule ignore case.
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=roles.CHOICES)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Invitations sent by the operator have no inviter and are honoured as such; one whose
    # inviter's account was deleted (invited_by set to NULL) is not, so this is kept explicitly.
    invited_by_operator = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                "organization",
                Lower("email"),
                condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="invitation_one_pending_per_email_and_org",
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=[role.id for role in roles.ROLES]),
                name="invitation_role_known",
            ),
            models.CheckConstraint(
                condition=~models.Q(invited_by_operator=True, invited_by__isnull=False),
                name="invitation_operator_has_no_inviter",
            ),
        ]

    def __str__(self):
        return f"Invitation of {self.email} to {self.organization} as {self.role}"

    def __repr__(self):
        return f"<Invitation {self.email!r} as {self.role}>"

    @property
    def role_obj(self) -> roles.Role:
        return roles.get_role(self.role)

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and not self.is_expired
