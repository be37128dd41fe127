"""`AuditEvent`, moved here from the `keyvault` app with its table (`keyvault_auditevent`) and
every row in it.

On a database that had the model in keyvault, keyvault's 0005 migration dropped the foreign-key
constraint of `actor_token_id` and took the model out of keyvault's state; this one adds it to
the audit app's state without touching the table, which already has exactly these columns and
indexes. A fresh database gets the same table from keyvault's migrations, which run first.

The content type moves too, so that permissions granted on audit events (and admin history
naming them) follow the model instead of pointing at a model that no longer exists.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def move_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    if not ContentType.objects.using(db).filter(app_label="audit", model="auditevent").exists():
        ContentType.objects.using(db).filter(app_label="keyvault", model="auditevent").update(
            app_label="audit"
        )


def restore_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    if not ContentType.objects.using(db).filter(app_label="keyvault", model="auditevent").exists():
        ContentType.objects.using(db).filter(app_label="audit", model="auditevent").update(
            app_label="keyvault"
        )


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("keyvault", "0005_auditevent_moves_to_audit"),
        ("organizations", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditEvent",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("actor_token_id", models.UUIDField(blank=True, db_index=True, null=True)),
                        ("actor_label", models.CharField(max_length=254)),
                        ("action", models.CharField(db_index=True, max_length=64)),
                        ("target_type", models.CharField(blank=True, max_length=64)),
                        ("target_id", models.CharField(blank=True, max_length=64)),
                        ("target_label", models.CharField(blank=True, max_length=200)),
                        ("ip_address", models.GenericIPAddressField(blank=True, null=True)),
                        ("metadata", models.JSONField(blank=True, default=dict)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        (
                            "actor_user",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "organization",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="audit_events",
                                to="organizations.organization",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "keyvault_auditevent",
                        "ordering": ["-created_at", "-id"],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_type, restore_content_type),
    ]
