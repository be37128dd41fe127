# The stored KEK id becomes a column the database computes from the envelope. A column cannot be
# altered into a generated one, so it is dropped and added again: every row's value is then
# derived from the envelope it holds. The secrets themselves are not touched.
#
# Reversed (rolling back a deploy), the plain column of before comes back: added with "" (it
# has no default, and a NOT NULL column needs one for the rows already there), then filled from
# the envelopes, as the code of before expects.

import keyvault.fields
from django.db import migrations, models


def fill_kek_id_from_the_envelope(apps, schema_editor):
    ProviderKey = apps.get_model("keyvault", "ProviderKey")
    ProviderKey.objects.using(schema_editor.connection.alias).update(
        kek_id=keyvault.fields.EnvelopeKekId("secret")
    )


class Migration(migrations.Migration):

    dependencies = [
        ('keyvault', '0003_secret_bound_to_routing_settings'),
    ]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, fill_kek_id_from_the_envelope),
        migrations.AlterField(
            model_name='providerkey',
            name='kek_id',
            field=models.CharField(db_index=True, default='', editable=False, max_length=64),
        ),
        migrations.RemoveField(
            model_name='providerkey',
            name='kek_id',
        ),
        migrations.AddField(
            model_name='providerkey',
            name='kek_id',
            field=models.GeneratedField(db_index=True, db_persist=True, expression=keyvault.fields.EnvelopeKekId('secret'), output_field=models.CharField(max_length=64)),
        ),
    ]
