import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import pictor_billing.clock

FINANCE_GROUP = "Finance"


def finance_group_create(apps, schema_editor):
    """The Finance group: staff without an account who read every account's invoices (SPEC, Finance staff)."""
    Group = apps.get_model("auth", "Group")
    Group.objects.get_or_create(name=FINANCE_GROUP)


def finance_group_delete(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=FINANCE_GROUP).delete()


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ExportRecord",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(default=pictor_billing.clock.now)),
                ("filters", models.JSONField(blank=True, default=dict,
                                             help_text="The search's filter, as in its URL.")),
                ("format", models.CharField(choices=[("invoices_csv", "CSV, one invoice a row"),
                                                     ("lines_csv", "CSV, one invoice line a row"),
                                                     ("pdf_zip", "Zip of PDFs")], max_length=20)),
                ("row_count", models.PositiveIntegerField()),
                ("user", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                           to=settings.AUTH_USER_MODEL)),
            ],
            options={"ordering": ["-created_at", "-id"]},
        ),
        migrations.CreateModel(
            name="ZipJob",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(default=pictor_billing.clock.now)),
                ("filters", models.JSONField(blank=True, default=dict,
                                             help_text="The search's filter, as in its URL.")),
                ("sort", models.CharField(blank=True, max_length=20)),
                ("total", models.PositiveIntegerField()),
                ("done", models.PositiveIntegerField(default=0)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("error", models.CharField(blank=True, max_length=300)),
                ("user", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                           to=settings.AUTH_USER_MODEL)),
            ],
            options={"ordering": ["-created_at", "-id"]},
        ),
        migrations.RunPython(finance_group_create, finance_group_delete),
    ]
