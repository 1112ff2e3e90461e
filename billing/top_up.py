"""Buying tokens: a package or a mix from the Top Up modal and the estimator, and auto top-up."""

import datetime

from django.db import transaction

from accounts.models import Account
from accounts.services import account_lock
from invoices.models import Invoice
from invoices.services import invoice_issue
from payments.models import CreditEntry
from payments.services import NoDefaultCard, PaymentDeclined, card_charge_default, charge_refund_quietly
from pictor_billing import clock, pricing
from pictor_billing.money import ZERO
from tokens.models import TokenEntry, TokenPackage, TokenSettings, TopUp
from tokens.services import (
    email_account_users,
    ledger_add,
    low_balance_check,
    packages_on_sale,
    token_balance,
    token_settings,
    top_up_mix_quote,
)


def tokens_top_up(
    *, account: Account, package: TokenPackage, token: str
) -> tuple[TopUp, bool]:
    """Buy a package: charge the default card, credit the tokens and issue its own invoice, in one transaction.

    The same form `token` again returns the first top-up and `False`.
    Raises NoDefaultCard or PaymentDeclined, in which case nothing changes.
    """
    return tokens_top_up_mix(account=account, items=[(package, 1)], token=token)


def tokens_top_up_mix(
    *, account: Account, items: list[tuple[TokenPackage, int]], token: str
) -> tuple[TopUp, bool]:
    """Buy several packages in one purchase with one invoice (the estimator's suggested mix)."""
    charge_box: list = []
    try:
        with transaction.atomic():
            account = account_lock(account)
            done = TopUp.objects.filter(token=token, account=account).first()
            if done is not None:
                return done, False
            return _top_up(account, items, token=token, automatic=False, now=clock.now(account),
                           charge_box=charge_box), True
    except Exception:
        for charge in charge_box:
            charge_refund_quietly(charge)
        raise


def _top_up(account, items, *, token, automatic, now, charge_box, prefs=None) -> TopUp:
    # Inside the caller's transaction, with the account locked.
    quote = top_up_mix_quote(account=account, items=items)
    description = f"{'Auto top-up' if automatic else 'Token top-up'}: {quote.package_name}, {quote.tokens:,} tokens"
    charge = card_charge_default(account=account, amount=quote.total_due, idempotency_key=f"topup:{token}",
                                 description=description)
    if charge is not None:
        charge_box.append(charge)
    invoice = invoice_issue(
        account=account, kind=Invoice.TOP_UP, description=description, lines=quote.lines,
        subtotal=quote.list_subtotal, discount_total=ZERO, credit_applied=quote.credit_applied,
        total=quote.total_due, status=Invoice.PAID, issued_on=now.date(), charge=charge,
    )
    if quote.credit_applied:
        CreditEntry.objects.create(account=account, kind=CreditEntry.APPLIED, amount=-quote.credit_applied,
                                   invoice=invoice, note=f"Applied to {invoice.number}", created_at=now)
    entry = ledger_add(account=account, kind=TokenEntry.AUTO_TOP_UP if automatic else TokenEntry.TOP_UP,
                       amount=quote.tokens, invoice=invoice, note=quote.package_name)
    single = items[0][0] if len(items) == 1 and items[0][1] == 1 else None
    low_balance_check(account, prefs or token_settings(account), entry.balance_after)
    return TopUp.objects.create(account=account, package=single, automatic=automatic, tokens=quote.tokens,
                                token=token, invoice=invoice, created_at=now)


def auto_top_up_allowed(account: Account, prefs: TokenSettings, now: datetime.datetime) -> bool:
    """Auto top-up is on, has a package, and this calendar month's limit is not reached."""
    if not prefs.auto_top_up or prefs.auto_top_up_package_id is None:
        return False
    # Counted by invoice date: the account's calendar month.
    month_start = now.date().replace(day=1)
    next_month = (month_start + datetime.timedelta(days=32)).replace(day=1)
    done = TopUp.objects.filter(account=account, automatic=True, invoice__issued_on__gte=month_start,
                                invoice__issued_on__lt=next_month).count()
    return done < prefs.auto_top_up_monthly_limit


def auto_top_up(account: Account, prefs: TokenSettings, now: datetime.datetime, charge_box: list, *,
                 token: str) -> int | None:
    """Buy the chosen package now; the new balance, or None when it could not be bought (then switched off).

    Called with the account locked, in the usage debit's transaction:
    concurrent debits queue on that lock, so the one that takes the balance
    below the threshold tops up and the next ones see the new balance.
    """
    try:
        with transaction.atomic():  # a savepoint: a decline undoes the top-up, never the usage
            if not packages_on_sale().filter(pk=prefs.auto_top_up_package_id).exists():
                raise pricing.PricingError("the auto top-up package is not on sale")
            _top_up(account, [(prefs.auto_top_up_package, 1)], token=token, automatic=True, now=now,
                    charge_box=charge_box, prefs=prefs)
        return token_balance(account)
    except (PaymentDeclined, NoDefaultCard, pricing.PricingError) as error:
        if isinstance(error, pricing.PricingError):
            reason = f"The {prefs.auto_top_up_package.name} package can no longer be bought."
        else:
            reason = getattr(error, "reason", "") or "No default card."
        TokenSettings.objects.filter(pk=prefs.pk).update(auto_top_up=False, auto_top_up_failure=reason[:200])
        prefs.auto_top_up, prefs.auto_top_up_failure = False, reason[:200]
        email_account_users(account, "Auto top-up switched off",
                      f"An automatic token top-up failed: {reason}\nAuto top-up is now off. Add a card and switch "
                      "it on again on the Token activity page.")
        return None


