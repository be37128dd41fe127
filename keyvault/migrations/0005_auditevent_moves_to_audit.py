"""`AuditEvent` moves to the `audit` app (audit/migrations/0001_initial.py); its table and rows
stay where they are.

The foreign key from `actor_token` to `ProxyToken` becomes a plain column first: its constraint
is dropped here, while keyvault still owns the model, and the column (`actor_token_id`, its
values and its index) is left as it is. Then the model leaves keyvault's state without touching
the database.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("keyvault", "0004_kek_id_computed_from_the_envelope"),
        # Reads keyvault's AuditEvent: it must run while the model is still keyvault's.
        ("organizations", "0003_unlock_placeholder_accounts"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="actor_token",
            field=models.ForeignKey(
                blank=True,
                null=True,
                db_constraint=False,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="keyvault.proxytoken",
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AuditEvent")],
            database_operations=[],
        ),
    ]
