"""Give back the addresses that placeholder accounts lock.

The admin's old "add member" form, and the commands without `--password`, created an account
with an unusable password for an address that had none. Its owner was locked out for good:
sign-up found the address taken, and Django's password reset skips unusable passwords. Those
accounts never signed in, so nothing was ever done with them; what they hold are memberships
that the address's owner never agreed to.

A placeholder is an active account, neither staff nor superuser, with an unusable password
and no sign-in ever. For each of its memberships:

- kept when the operator vouched for it (`manage.py add_member` added it, or `manage.py
  create_org` made the address the organization's owner), or when it is an owner's and the
  organization has no owner but placeholders (removing it would leave nobody in charge);
- removed otherwise, recorded in the organization's audit trail with the reason, so that its
  admins see it and can send an invitation instead.

A placeholder left with memberships gets a random password nobody knows, so that its owner
claims it through password reset; one left with none is deleted, so that its owner can sign
up. Nothing else is touched. Reversing this migration restores nothing.
"""

import secrets

from django.conf import settings
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX, make_password
from django.db import migrations

ACTOR_LABEL = "manage.py migrate"
REASON = "added without the address owner's consent, never accepted"
OWNER = "owner"


def placeholders(User):
    return User.objects.filter(
        is_active=True,
        is_staff=False,
        is_superuser=False,
        last_login__isnull=True,
        password__startswith=UNUSABLE_PASSWORD_PREFIX,
    )


def unlock_placeholder_accounts(apps, schema_editor):
    User = apps.get_model(settings.AUTH_USER_MODEL)
    Membership = apps.get_model("organizations", "Membership")
    AuditEvent = apps.get_model("keyvault", "AuditEvent")

    placeholder_ids = placeholders(User).values("pk")
    memberships = list(
        Membership.objects.filter(user__in=placeholder_ids).select_related("user").order_by("pk")
    )
    # Only the operator's commands record themselves under these labels: a person's label is
    # their address, and tokens never manage members.
    by_operator = AuditEvent.objects.filter(actor_user__isnull=True, actor_token__isnull=True)
    vouched = set(
        by_operator.filter(
            action="member.added",
            actor_label="manage.py add_member",
            target_type="organizations.membership",
            target_id__in=[str(m.pk) for m in memberships],
        ).values_list("target_id", flat=True)
    )
    made_owner = {
        (event.organization_id, event.metadata.get("owner"))
        for event in by_operator.filter(
            action="organization.created",
            actor_label="manage.py create_org",
            organization_id__in={m.organization_id for m in memberships if m.role == OWNER},
        )
    }
    with_another_owner = set(
        Membership.objects.filter(role=OWNER)
        .exclude(user__in=placeholder_ids)
        .values_list("organization_id", flat=True)
    )

    kept_users = set()
    for membership in memberships:
        email = membership.user.email
        keep = str(membership.pk) in vouched or (
            membership.role == OWNER
            and (
                (membership.organization_id, email) in made_owner
                or membership.organization_id not in with_another_owner
            )
        )
        if keep:
            kept_users.add(membership.user_id)
            continue
        AuditEvent.objects.create(
            organization_id=membership.organization_id,
            actor_label=ACTOR_LABEL,
            action="member.removed",
            target_type="organizations.membership",
            target_id=str(membership.pk),
            target_label=email[:200],
            metadata={"user": email, "role": membership.role, "reason": REASON},
        )
        membership.delete()

    for user in placeholders(User).order_by("pk"):
        if user.pk in kept_users:
            user.password = make_password(secrets.token_urlsafe(32))
            user.save(update_fields=["password"])
        else:
            user.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("organizations", "0002_invitation"),
        ("keyvault", "0002_proxy_tokens_and_usage"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(unlock_placeholder_accounts, migrations.RunPython.noop),
    ]
