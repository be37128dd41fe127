"""Accounts made before addresses were verified count as verified: their owners have been
signing in with them, and invitations and password resets reached them there."""

from django.conf import settings
from django.db import migrations


def verify_existing(apps, schema_editor):
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    EmailAddress = apps.get_model("account", "EmailAddress")
    known = set(EmailAddress.objects.values_list("user_id", flat=True))
    EmailAddress.objects.bulk_create(
        [
            EmailAddress(user_id=user.pk, email=user.email.lower(), primary=True, verified=True)
            for user in User.objects.exclude(email="").only("pk", "email").iterator()
            if user.pk not in known
        ],
        batch_size=500,
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("account", "0009_emailaddress_unique_primary_email"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(verify_existing, migrations.RunPython.noop)]
