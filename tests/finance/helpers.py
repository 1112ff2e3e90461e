"""Building blocks for the finance tests: a finance user, invoices issued directly, licenses with their terms."""

import datetime
import uuid
from decimal import Decimal as D

from django.contrib.auth.models import Group

from accounts.models import Account
from invoices.models import Invoice
from invoices.services import invoice_issue
from licenses.models import License, LicenseTerm, Purchase, RenewalGroup
from payments.models import PaymentAttempt
from pictor_billing.pricing import QuoteLine
from tests.factories import AccountFactory, UserFactory

FINANCE_EMAIL = "finance@example.com"


def finance_user_make(email=FINANCE_EMAIL, **extra):
    """A staff user in the Finance group, with no account (SPEC, Finance staff)."""
    user = UserFactory(email=email, account=None, is_staff=True, **extra)
    user.groups.add(Group.objects.get(name="Finance"))
    return user


def clocked_account_make(name="Clocked Co") -> Account:
    account = AccountFactory(name=name)
    Account.objects.filter(pk=account.pk).update(is_test_account=True)
    account.refresh_from_db()
    return account


def invoice_make(account, total="10.00", *, kind=Invoice.PURCHASE, issued_on=None, status=None, refers_to=None,
                 description=None, subtotal=None, credit_applied="0.00", lines=None) -> Invoice:
    """An issued invoice with one line per amount in `lines` (default: one line of `total`)."""
    total = D(total)
    credit = D(credit_applied)
    subtotal = D(subtotal) if subtotal is not None else total + credit
    if lines is None:
        lines = [("item", description or kind, 1, subtotal, subtotal)]
        if credit:
            lines.append(("credit_applied", "Credit balance applied", 1, -credit, -credit))
    if status is None:
        status = Invoice.CREDITED if total < 0 else Invoice.PAID
    return invoice_issue(
        account=account, kind=kind, description=description or f"{kind} invoice",
        lines=[QuoteLine(k, text, quantity, D(unit), D(amount)) for k, text, quantity, unit, amount in lines],
        subtotal=subtotal, discount_total=D("0.00"), credit_applied=credit, total=total, status=status,
        issued_on=issued_on or datetime.date.today(), refers_to=refers_to,
    )


def license_make(account, *, tier, period, purchased_on, terms, status=License.ACTIVE, ended_on=None) -> License:
    """A license with its terms: each term is (starts_on, ends_on, tier, period, list_price, rate, paid)."""
    last = terms[-1]
    invoice = invoice_make(account, last[6], issued_on=purchased_on)
    purchase = Purchase.objects.create(account=account, token=uuid.uuid4().hex, tier=tier, period=period, quantity=1,
                                       total_due=D(last[6]), invoice=invoice)
    group = (RenewalGroup.objects.filter(account=account, period="monthly", ended_on__isnull=True).first()
             if period == "monthly" else None)  # one open monthly group per account
    group = group or RenewalGroup.objects.create(account=account, period=period, anchor_on=purchased_on)
    license = License.objects.create(
        account=account, purchase=purchase, group=group, tier=last[2], period=last[3], status=status,
        purchased_on=purchased_on, period_start=last[0], period_end=last[1], list_price=D(last[4]),
        discount_rate=D(last[5]), ended_on=ended_on)
    for starts_on, ends_on, term_tier, term_period, list_price, rate, paid in terms:
        LicenseTerm.objects.create(license=license, kind=LicenseTerm.PURCHASE, starts_on=starts_on, ends_on=ends_on,
                                   tier=term_tier, period=term_period, list_price=D(list_price), rate=D(rate),
                                   paid=D(paid), invoice=invoice)
    return license


def attempt_make(invoice, *, status=PaymentAttempt.FAILED, failure_reason="Your card was declined.") -> PaymentAttempt:
    return PaymentAttempt.objects.create(
        account=invoice.account, invoice=invoice, purpose=PaymentAttempt.RENEWAL, kind=PaymentAttempt.CHARGE,
        amount=invoice.total, description=invoice.description, idempotency_key=uuid.uuid4().hex, gateway="sandbox",
        status=status, failure_reason=failure_reason)
