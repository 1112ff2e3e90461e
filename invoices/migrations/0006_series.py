"""Invoice numbering series: "" for real accounts, "TEST" for test accounts (PB-TEST-YYYY-NNNNNN);
the sequence is kept per series and year, and a renewal's service period is stored."""

from django.db import migrations, models


def copy_sequences(apps, schema_editor):
    Old = apps.get_model("invoices", "InvoiceSequence")
    New = apps.get_model("invoices", "InvoiceSequenceBySeries")
    New.objects.bulk_create(New(series="", year=row.year, last_number=row.last_number) for row in Old.objects.all())


class Migration(migrations.Migration):

    dependencies = [
        ("invoices", "0005_numbered_last"),
    ]

    operations = [
        migrations.CreateModel(
            name="InvoiceSequenceBySeries",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("series", models.CharField(blank=True, default="", max_length=10)),
                ("year", models.PositiveSmallIntegerField()),
                ("last_number", models.PositiveIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(copy_sequences, migrations.RunPython.noop),
        migrations.DeleteModel(name="InvoiceSequence"),
        migrations.RenameModel(old_name="InvoiceSequenceBySeries", new_name="InvoiceSequence"),
        migrations.AddConstraint(
            model_name="invoicesequence",
            constraint=models.UniqueConstraint(fields=("series", "year"), name="one_sequence_per_series_year"),
        ),
        migrations.AddField(
            model_name="invoice",
            name="series",
            field=models.CharField(blank=True, default="", help_text="TEST for a test account.", max_length=10),
        ),
        migrations.AddField(
            model_name="invoice",
            name="service_from",
            field=models.DateField(blank=True, help_text="A renewal's service period.", null=True),
        ),
        migrations.AddField(
            model_name="invoice",
            name="service_to",
            field=models.DateField(blank=True, null=True),
        ),
        migrations.RemoveConstraint(model_name="invoice", name="gap_free_per_year"),
        migrations.AddConstraint(
            model_name="invoice",
            constraint=models.UniqueConstraint(fields=("series", "year", "sequence"), name="gap_free_per_year"),
        ),
    ]
