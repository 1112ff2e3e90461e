"""Every license joins its renewal group and gets its current term; licenses already past their
billing date when this ships are expired (the first billing run never bills dates before it)."""

import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import migrations, models


def backfill(apps, schema_editor):
    License = apps.get_model("licenses", "License")
    LicenseTerm = apps.get_model("licenses", "LicenseTerm")
    RenewalGroup = apps.get_model("licenses", "RenewalGroup")
    Account = apps.get_model("accounts", "Account")
    today = datetime.datetime.now(datetime.UTC).date()
    # Lapsed before renewals existed: they expire, paid until their billing date.
    License.objects.filter(period_end__lte=today).exclude(status="expired").update(status="expired")
    for account in Account.objects.filter(licenses__isnull=False).distinct():
        licenses = list(License.objects.filter(account=account).select_related("purchase__invoice"))
        monthly_live = [lic for lic in licenses if lic.period == "monthly" and lic.status != "expired"]
        monthly_ended = [lic for lic in licenses if lic.period == "monthly" and lic.status == "expired"]
        if monthly_live:
            group = RenewalGroup.objects.create(account=account, period="monthly",
                                                anchor_on=min(lic.period_start for lic in monthly_live))
            License.objects.filter(pk__in=[lic.pk for lic in monthly_live]).update(group=group)
        else:
            Account.objects.filter(pk=account.pk).update(monthly_anchor_day=None)
        if monthly_ended:
            group = RenewalGroup.objects.create(account=account, period="monthly",
                                                anchor_on=min(lic.period_start for lic in monthly_ended),
                                                ended_on=max(lic.period_end for lic in monthly_ended))
            License.objects.filter(pk__in=[lic.pk for lic in monthly_ended]).update(group=group)
        by_purchase = {}
        for lic in licenses:
            if lic.period == "annual":
                by_purchase.setdefault(lic.purchase_id, []).append(lic)
        for bought in by_purchase.values():
            ended = all(lic.status == "expired" for lic in bought)
            group = RenewalGroup.objects.create(account=account, period="annual", anchor_on=bought[0].purchased_on,
                                                ended_on=max(lic.period_end for lic in bought) if ended else None)
            License.objects.filter(pk__in=[lic.pk for lic in bought]).update(group=group)
        for lic in licenses:
            invoice = lic.purchase.invoice
            share = (invoice.subtotal - invoice.discount_total) / lic.purchase.quantity
            LicenseTerm.objects.create(
                license_id=lic.pk, kind="purchase", starts_on=lic.period_start, ends_on=lic.period_end, tier=lic.tier,
                period=lic.period, list_price=lic.list_price, rate=lic.discount_rate,
                paid=max(share, Decimal("0")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), invoice_id=invoice.pk)
    License.objects.filter(status="expired", ended_on__isnull=True).update(ended_on=models.F("period_end"))


class Migration(migrations.Migration):

    dependencies = [
        ("licenses", "0004_renewal_groups_and_terms"),
    ]

    operations = [
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="license",
            name="group",
            field=models.ForeignKey(on_delete=models.deletion.PROTECT, related_name="licenses",
                                    to="licenses.renewalgroup"),
        ),
    ]
