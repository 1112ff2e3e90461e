"""Payment attempts replace charges; removed cards keep their row. Each charge becomes a succeeded
attempt naming the invoice it paid, so the history of every payment survives."""

import django.db.models.deletion
import django.db.models.manager
import pictor_billing.clock
from django.db import migrations, models


def charges_to_attempts(apps, schema_editor):
    Charge = apps.get_model("payments", "Charge")
    Invoice = apps.get_model("invoices", "Invoice")
    PaymentAttempt = apps.get_model("payments", "PaymentAttempt")
    paid = dict(Invoice.objects.filter(charge__isnull=False).values_list("charge_id", "pk"))
    PaymentAttempt.objects.bulk_create(
        PaymentAttempt(account_id=charge.account_id, card_id=charge.card_id, invoice_id=paid.get(charge.pk),
                       purpose="top_up" if charge.idempotency_key.startswith("topup:") else "purchase",
                       kind="charge", amount=charge.amount, description=charge.description,
                       idempotency_key=charge.idempotency_key, status="succeeded", gateway="sandbox",
                       processor_ref=charge.gateway_ref, processor_answer={"migrated_from_charge": charge.pk},
                       order_recorded_at=charge.created_at, created_at=charge.created_at)
        for charge in Charge.objects.all()
    )


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_account_clock'),
        ('invoices', '0003_created_at_from_the_clock'),
        ('payments', '0002_created_at_from_the_clock'),
    ]

    operations = [
        migrations.CreateModel(
            name='PaymentAttempt',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('purpose', models.CharField(choices=[('purchase', 'License purchase'), ('top_up', 'Token top-up'), ('auto_top_up', 'Auto top-up'), ('renewal', 'Renewal')], max_length=20)),
                ('kind', models.CharField(choices=[('authorize', 'Authorize, then capture'), ('charge', 'Charge'), ('refund', 'Refund')], max_length=10)),
                ('amount', models.DecimalField(decimal_places=2, max_digits=12)),
                ('currency', models.CharField(default='USD', max_length=3)),
                ('description', models.CharField(max_length=200)),
                ('off_session', models.BooleanField(default=False, help_text='Made without the cardholder present.')),
                ('idempotency_key', models.CharField(max_length=200, unique=True)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('requires_action', 'Requires action'), ('authorized', 'Authorized, not captured'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled (authorization released)'), ('refunded', 'Refunded'), ('unknown', 'Unknown (no answer from the processor)')], default='pending', max_length=20)),
                ('gateway', models.CharField(max_length=20)),
                ('processor_ref', models.CharField(blank=True, help_text="The processor's id for this payment.", max_length=255)),
                ('processor_answer', models.JSONField(blank=True, default=dict, help_text='What the processor last said.')),
                ('failure_reason', models.CharField(blank=True, help_text='Plain words, as shown to the owner.', max_length=300)),
                ('order', models.JSONField(blank=True, default=dict, help_text='What is recorded once the money is authorized.')),
                ('order_recorded_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(default=pictor_billing.clock.now)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.AlterModelOptions(
            name='card',
            options={'base_manager_name': 'all_objects', 'default_manager_name': 'objects', 'ordering': ['-is_default', '-created_at']},
        ),
        migrations.AlterModelManagers(
            name='card',
            managers=[
                ('all_objects', django.db.models.manager.Manager()),
                ('objects', django.db.models.manager.Manager()),
            ],
        ),
        migrations.AddField(
            model_name='card',
            name='removed_at',
            field=models.DateTimeField(blank=True, help_text='Removed by the owner; kept for the record.', null=True),
        ),
        migrations.AlterField(
            model_name='creditentry',
            name='invoice',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='credit_entries', to='invoices.invoice'),
        ),
        migrations.AddConstraint(
            model_name='card',
            constraint=models.CheckConstraint(condition=models.Q(('is_default', True), ('removed_at__isnull', False), _negated=True), name='removed_card_is_never_default'),
        ),
        migrations.AddField(
            model_name='paymentattempt',
            name='account',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='payment_attempts', to='accounts.account'),
        ),
        migrations.AddField(
            model_name='paymentattempt',
            name='card',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='attempts', to='payments.card'),
        ),
        migrations.AddField(
            model_name='paymentattempt',
            name='invoice',
            field=models.ForeignKey(blank=True, help_text='The invoice this attempt pays.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='payment_attempts', to='invoices.invoice'),
        ),
        migrations.AddField(
            model_name='paymentattempt',
            name='refund_of',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='refunds', to='payments.paymentattempt'),
        ),
        migrations.AddIndex(
            model_name='paymentattempt',
            index=models.Index(fields=['status', 'updated_at'], name='payments_pa_status_4a9688_idx'),
        ),
        migrations.AddIndex(
            model_name='paymentattempt',
            index=models.Index(fields=['account', 'purpose'], name='payments_pa_account_a80216_idx'),
        ),
        migrations.AddConstraint(
            model_name='paymentattempt',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['pending', 'requires_action', 'authorized', 'unknown'])), fields=('invoice',), name='one_attempt_in_flight_per_invoice'),
        ),
        migrations.AddConstraint(
            model_name='paymentattempt',
            constraint=models.CheckConstraint(condition=models.Q(('amount__gt', 0)), name='attempt_amount_positive'),
        ),
        migrations.RunPython(charges_to_attempts, migrations.RunPython.noop),
    ]
