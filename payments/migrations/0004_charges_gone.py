"""Charges are payment attempts now (0003 copied them); the old table goes."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("invoices", "0004_status_history_and_credit_notes"),
        ("payments", "0003_payment_attempts"),
    ]

    operations = [
        migrations.DeleteModel(name="Charge"),
    ]
