"""Plan changes: upgrades now, paid like a purchase; downgrades at the billing date, undoable until then.

docs/rules.md, "Upgrading and downgrading". An upgrade (a tier up, or monthly -> annual, nothing
going down) runs the purchase's steps (billing.checkout): begun under the account lock with the
quote the owner saw (its signed digest), authorized outside any transaction, recorded only if a
fresh quote is still that one, then captured. One invoice carries the credit for the unused share
and the new charge. A downgrade (a tier or the period going down) is only written on the license:
the renewal applies it (billing.renewals).
"""

from django.db import transaction
from django.db.models import OuterRef, Subquery

from accounts.models import Account, User
from accounts.services import account_lock
from billing.checkout import (
    OrderChanged,
    checkout_run,
    quote_still_holds,
    settle_lock,
    settler,
)
from billing.purchase import refuse_while_unsettled
from billing.renewals import groups_close
from invoices.models import Invoice
from invoices.services import issuing_invoice
from licenses.models import License, LicenseTerm, PlanChange, RenewalGroup
from licenses.services import ChangeRefused, change_refusal, prices_in_force
from payments.models import CreditEntry, PaymentAttempt
from payments.services import attempt_begin, chargeable_card, credit_balance
from pictor_billing import clock, pricing
from pictor_billing.form_tokens import quote_digest_matches
from pictor_billing.money import ZERO

# The change form's digests are signed with this salt (its summary renders them).
DIGEST_SALT = "billing.change.quote"


def _licenses(account: Account, license_ids, *, lock: bool) -> list[License]:
    ids = sorted(set(license_ids))
    licenses = License.objects.filter(account=account, pk__in=ids).annotate(
        paid=Subquery(LicenseTerm.objects.filter(license=OuterRef("pk")).order_by("-starts_on", "-pk")
                      .values("paid")[:1]))
    if lock:
        licenses = licenses.select_for_update(of=("self",))
    licenses = list(licenses.order_by("pk"))
    if not ids or len(licenses) != len(ids):
        raise ChangeRefused("Choose one or more of your licenses.")
    return licenses


def change_quote(*, account: Account, license_ids, tier: str, period: str, lock: bool = False) -> pricing.ChangeQuote:
    """Quote upgrading these licenses of the account to `tier` and `period` now; the preview and the
    charge both call this. Raises ChangeRefused (in words the owner reads) for a license that cannot
    change now or a change that is not an upgrade."""
    today = clock.today(account)
    licenses = _licenses(account, license_ids, lock=lock)
    for lic in licenses:
        if refusal := change_refusal(lic, today):
            raise ChangeRefused(refusal)
        direction = pricing.change_direction(lic.tier, lic.period, tier, period)
        if direction == pricing.SAME:
            raise ChangeRefused(f"License #{lic.pk} is already {pricing.TIER_LABELS[tier]} {period}.")
        if direction == pricing.DOWN:
            raise ChangeRefused(f"Moving license #{lic.pk} to {pricing.TIER_LABELS[tier]} {period} is a downgrade: "
                                "it takes effect on its billing date. Schedule it on its own.")
        if lic.change_scheduled:
            raise ChangeRefused(f"License #{lic.pk} has a change to {lic.renews_as_label} scheduled. Undo it first.")
    active = License.objects.filter(account=account).active().count()
    try:
        return pricing.quote_change(
            today=today, prices=prices_in_force(today), tier=tier, period=period, active_count=active,
            credit_balance=credit_balance(account),
            licenses=[pricing.ChangingLicense(lic.pk, lic.tier, lic.period, lic.list_price, lic.discount_rate,
                                              lic.paid if lic.paid is not None else lic.list_price,
                                              lic.period_start, lic.period_end) for lic in licenses])
    except pricing.PricingError as error:
        raise ChangeRefused(f"{pricing.TIER_LABELS[tier]} {period} is not on sale right now.") from error


def change_description(quote: pricing.ChangeQuote) -> str:
    plural = "s" if quote.quantity > 1 else ""
    return f"Upgrade of {quote.quantity} license{plural} to {quote.label}"


def license_upgrade(*, account: Account, user: User | None, token: str, license_ids, tier: str, period: str,
                    shown_digest: str | None = None) -> tuple[PlanChange, bool]:
    """Upgrade these licenses now with the default card; the change and whether it is new.

    `token` is the form's one-time nonce (the same again returns the first change, charging nothing
    more); with `shown_digest`, a quote that differs from the one on screen raises OrderChanged and
    nothing is charged. Raises ChangeRefused, NoDefaultCard, PaymentDeclined, PaymentNeedsAction or
    PaymentPending as a purchase does.
    """
    with transaction.atomic():
        account = account_lock(account)
        done = PlanChange.objects.filter(token=token, account=account).select_related("invoice").first()
        if done is not None:
            return done, False
        refuse_while_unsettled(account, key_base=f"change:{token}", purpose=PaymentAttempt.CHANGE)
        quote = change_quote(account=account, license_ids=license_ids, tier=tier, period=period, lock=True)
        if shown_digest is not None and not quote_digest_matches(shown_digest, quote, account_id=account.pk,
                                                                 salt=DIGEST_SALT):
            raise OrderChanged(quote=quote)
        card = chargeable_card(account)
        user_id = user.pk if user else None
        if not quote.total_due:
            return _record(account, quote, user_id=user_id, token=token), True
        attempt = attempt_begin(
            account=account, card=card, purpose=PaymentAttempt.CHANGE, kind=PaymentAttempt.AUTHORIZE,
            amount=quote.total_due, key_base=f"change:{token}", description=change_description(quote),
            order={"license_ids": [lic.id for lic in quote.licenses], "tier": tier, "period": period, "token": token,
                   "user_id": user_id, "fingerprint": pricing.quote_fingerprint(quote)},
        )
    return checkout_run(attempt), True


@settler(PaymentAttempt.CHANGE)
def change_settle(attempt: PaymentAttempt) -> PlanChange:
    """Record the change an authorized attempt pays for, if its quote is still the one authorized
    (idempotent: a recorded change is returned). Raises OrderChanged otherwise."""
    order = attempt.order
    with transaction.atomic():
        account, attempt = settle_lock(attempt)
        if attempt.order_recorded_at is not None:
            return PlanChange.objects.select_related("invoice").get(token=order["token"], account=account)
        try:
            quote = change_quote(account=account, license_ids=order["license_ids"], tier=order["tier"],
                                 period=order["period"], lock=True)
        except ChangeRefused as refused:
            raise OrderChanged(str(refused)) from refused
        if not quote_still_holds(quote, attempt):
            raise OrderChanged(quote=quote)
        return _record(account, quote, user_id=order["user_id"], token=order["token"], attempt=attempt)


def _record(account: Account, quote: pricing.ChangeQuote, *, user_id: int | None, token: str,
            attempt: PaymentAttempt | None = None) -> PlanChange:
    """Write the change: invoice, the licenses at their new tier (and period and group), their new
    terms, the credit ledger. The last writes of the caller's locked transaction; no processor call."""
    now = clock.now(account)
    today = now.date()
    paid = attempt is None
    with issuing_invoice(
        account=account, kind=Invoice.CHANGE, description=change_description(quote), lines=quote.lines,
        subtotal=quote.charge_new, discount_total=ZERO,
        credit_applied=quote.credit_applied, total=quote.total_due, status=Invoice.PAID if paid else Invoice.OPEN,
        issued_on=today, service_from=today, service_to=max(lic.renews_to for lic in quote.licenses),
        status_reason="Issued; nothing to charge" if paid else "Issued; the card is authorized",
        attempt_id=attempt.pk if attempt else None,
    ) as invoice:
        change = PlanChange.objects.create(account=account, user_id=user_id, token=token, tier=quote.tier,
                                           period=quote.period, total_due=quote.total_due, invoice=invoice,
                                           created_at=now)
        licenses = {lic.pk: lic for lic in License.objects.filter(pk__in=[c.id for c in quote.licenses])}
        change.licenses.set(licenses.values())
        switched = [lic for lic in licenses.values() if lic.period != quote.period]
        # Licenses switched to annual together share one annual date, in a group of their own.
        group = RenewalGroup.objects.create(account=account, period=quote.period, anchor_on=today,
                                            created_at=now) if switched else None
        for changed in quote.licenses:
            lic = licenses[changed.id]
            if lic.period != changed.period:
                lic.group, lic.period_start = group, today
            lic.tier, lic.period, lic.period_end = changed.tier, changed.period, changed.renews_to
            lic.list_price, lic.discount_rate = changed.list_price, changed.rate
        License.objects.bulk_update(licenses.values(), ["tier", "period", "period_start", "period_end", "list_price",
                                                        "discount_rate", "group"])
        # The term each license was in ends today; a new one runs at the new tier.
        LicenseTerm.objects.filter(license_id__in=licenses, ends_on__gt=today, starts_on__lte=today).update(
            ends_on=today)
        LicenseTerm.objects.bulk_create(
            LicenseTerm(license_id=c.id, kind=LicenseTerm.CHANGE, starts_on=today, ends_on=c.renews_to, tier=c.tier,
                        period=c.period, list_price=c.list_price, rate=c.rate, paid=c.charge, invoice=invoice,
                        created_at=now)
            for c in quote.licenses)
        entries = []
        if quote.credit_unused:
            entries.append(CreditEntry(account=account, kind=CreditEntry.UPGRADE_CREDIT, amount=quote.credit_unused,
                                       invoice=invoice, note="Unused time of the licenses upgraded", created_at=now))
        if quote.credit_applied:
            entries.append(CreditEntry(account=account, kind=CreditEntry.APPLIED, amount=-quote.credit_applied,
                                       invoice=invoice, note="Applied to this plan change", created_at=now))
        CreditEntry.objects.bulk_create(entries)
        if switched:
            groups_close(account, today=today)  # the monthly anchor goes with the last monthly license
        if attempt is not None:
            PaymentAttempt.objects.filter(pk=attempt.pk).update(invoice=invoice, order_recorded_at=now)
    return change
