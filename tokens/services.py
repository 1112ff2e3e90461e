"""Tokens: balance, the signup grant, and buying a package (tokens credited with its invoice)."""

import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import Account
from invoices.models import Invoice
from invoices.services import invoice_issue
from payments.models import CreditEntry
from payments.services import account_lock, card_charge_default, charge_refund_quietly, credit_balance
from pictor_billing import pricing
from pictor_billing.money import ZERO
from tokens.models import TokenEntry, TokenPackage, TopUp

SIGNUP_GRANT_TOKENS = 50


def token_balance(account: Account) -> int:
    """The account's tokens: the sum of its ledger."""
    return TokenEntry.objects.filter(account=account).balance()


def tokens_grant_signup(*, account: Account) -> TokenEntry:
    """The one-time 50-token welcome grant (a constraint stops a second one)."""
    return TokenEntry.objects.create(account=account, kind=TokenEntry.SIGNUP_GRANT, amount=SIGNUP_GRANT_TOKENS,
                                     note="Welcome to Pictor")


def top_up_quote(*, account: Account, package: TokenPackage) -> pricing.TopUpQuote:
    """Price a package for this account (its credit balance applies first)."""
    return pricing.quote_top_up(package_name=package.name, tokens=package.tokens, price=package.price,
                                credit_balance=credit_balance(account))


def tokens_top_up(
    *, account: Account, package: TokenPackage, token: str, now: datetime.datetime | None = None
) -> tuple[TopUp, bool]:
    """Buy a package: charge the default card, credit the tokens and issue its own invoice, in one transaction.

    The same form `token` again returns the first top-up and `False`.
    Raises NoDefaultCard or PaymentDeclined, in which case nothing changes.
    """
    today = (now or timezone.now()).date()
    charge = None
    try:
        with transaction.atomic():
            account = account_lock(account)
            done = TopUp.objects.filter(token=token, account=account).first()
            if done is not None:
                return done, False
            quote = top_up_quote(account=account, package=package)
            description = f"Token top-up: {package.name}, {package.tokens:,} tokens"
            charge = card_charge_default(account=account, amount=quote.total_due,
                                         idempotency_key=f"topup:{token}", description=description)
            invoice = invoice_issue(
                account=account, kind=Invoice.TOP_UP, description=description, lines=quote.lines,
                subtotal=quote.list_subtotal, discount_total=ZERO, credit_applied=quote.credit_applied,
                total=quote.total_due, status=Invoice.PAID, issued_on=today, charge=charge,
            )
            if quote.credit_applied:
                CreditEntry.objects.create(account=account, kind=CreditEntry.APPLIED, amount=-quote.credit_applied,
                                           invoice=invoice, note=f"Applied to {invoice.number}")
            TokenEntry.objects.create(account=account, kind=TokenEntry.TOP_UP, amount=package.tokens,
                                      invoice=invoice, note=package.name)
            top_up = TopUp.objects.create(account=account, package=package, tokens=package.tokens, token=token,
                                          invoice=invoice)
            return top_up, True
    except Exception:
        charge_refund_quietly(charge)
        raise
