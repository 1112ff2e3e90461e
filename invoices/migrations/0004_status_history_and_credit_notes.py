"""Invoice status history (the issue of every invoice is its first entry), credit notes, and
attempts name the invoices they pay (the invoice's own charge link goes)."""

import django.db.models.deletion
import pictor_billing.clock
from django.conf import settings
from django.db import migrations, models


def history_and_credit_notes(apps, schema_editor):
    Invoice = apps.get_model("invoices", "Invoice")
    InvoiceStatusChange = apps.get_model("invoices", "InvoiceStatusChange")
    Invoice.objects.filter(kind="credit").update(kind="credit_note")
    InvoiceStatusChange.objects.bulk_create(
        InvoiceStatusChange(invoice_id=pk, from_status="", to_status=status, changed_at=created_at,
                            reason="Issued")
        for pk, status, created_at in Invoice.objects.values_list("pk", "status", "created_at")
    )


class Migration(migrations.Migration):

    dependencies = [
        ('invoices', '0003_created_at_from_the_clock'),
        ('payments', '0003_payment_attempts'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='invoice',
            name='kind',
            field=models.CharField(choices=[('purchase', 'License purchase'), ('renewal', 'Renewal'), ('top_up', 'Token top-up'), ('credit_note', 'Credit note')], max_length=20),
        ),
        migrations.AlterField(
            model_name='invoice',
            name='refers_to',
            field=models.ForeignKey(blank=True, help_text='The invoice a credit note corrects.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='credit_notes', to='invoices.invoice'),
        ),
        migrations.CreateModel(
            name='InvoiceStatusChange',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('from_status', models.CharField(blank=True, help_text='Empty for the issue itself.', max_length=10)),
                ('to_status', models.CharField(choices=[('paid', 'Paid'), ('open', 'Open'), ('failed', 'Failed'), ('credited', 'Credited'), ('void', 'Void')], max_length=10)),
                ('changed_at', models.DateTimeField(default=pictor_billing.clock.now)),
                ('reason', models.CharField(max_length=200)),
                ('attempt_id', models.BigIntegerField(blank=True, help_text='The payment attempt, if one moved it.', null=True)),
                ('changed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('invoice', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='status_changes', to='invoices.invoice')),
            ],
            options={
                'ordering': ['changed_at', 'id'],
            },
        ),
        migrations.RunPython(history_and_credit_notes, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name='invoice',
            name='charge',
        ),
    ]
