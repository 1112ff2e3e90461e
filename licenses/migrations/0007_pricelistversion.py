"""The price list version row (licenses.catalogue caches the price list under its token)."""

import uuid

from django.db import migrations, models


def first_version(apps, schema_editor):
    apps.get_model("licenses", "PriceListVersion").objects.create(pk=1, token=uuid.uuid4().hex)


class Migration(migrations.Migration):

    dependencies = [
        ('licenses', '0006_plan_changes'),
    ]

    operations = [
        migrations.CreateModel(
            name='PriceListVersion',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('token', models.CharField(max_length=32)),
            ],
        ),
        migrations.RunPython(first_version, migrations.RunPython.noop),
    ]
