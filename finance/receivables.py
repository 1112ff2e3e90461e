"""Receivables: open invoices of real accounts by age since issue (0–7, 8–30, 31–90, 90+ days), per account.

Age is counted from the issue date to today's real date (UTC), not any test clock; failed invoices
are not receivable (a credit note already cancelled them, SPEC "Failed payments").
"""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Prefetch

from invoices.models import Invoice
from payments.models import PaymentAttempt
from pictor_billing import clock
from pictor_billing.money import ZERO

# (label, lowest age in days, highest age in days or None)
BUCKETS = [("0–7 days", 0, 7), ("8–30 days", 8, 30), ("31–90 days", 31, 90), ("90+ days", 91, None)]


def bucket_of(age: int) -> int:
    """The index in BUCKETS of an age in days (an invoice dated in the future counts as 0 days old)."""
    for index, (_label, _low, high) in enumerate(BUCKETS):
        if high is None or age <= high:
            return index
    raise AssertionError("the last bucket has no upper bound")


@dataclass
class OpenInvoice:
    invoice: Invoice
    age: int
    bucket: int


@dataclass
class AccountReceivables:
    account_id: int
    name: str
    invoices: list[OpenInvoice] = field(default_factory=list)
    by_bucket: list[Decimal] = field(default_factory=lambda: [ZERO] * len(BUCKETS))

    @property
    def total(self) -> Decimal:
        return sum(self.by_bucket, ZERO)


@dataclass
class Receivables:
    today: datetime.date
    accounts: list[AccountReceivables]
    by_bucket: list[Decimal]
    counts: list[int]

    @property
    def total(self) -> Decimal:
        return sum(self.by_bucket, ZERO)

    @property
    def count(self) -> int:
        return sum(self.counts)

    @property
    def buckets(self) -> list[dict]:
        return [{"label": label, "amount": amount, "count": count}
                for (label, _low, _high), amount, count in zip(BUCKETS, self.by_bucket, self.counts, strict=True)]


def receivables(today: datetime.date | None = None) -> Receivables:
    """Every open invoice of a real account, oldest first, grouped per account (largest amount first)."""
    today = today or clock.today()
    attempts = Prefetch("payment_attempts", queryset=PaymentAttempt.objects.order_by("created_at", "pk"))
    invoices = (Invoice.objects.filter(status=Invoice.OPEN, account__is_test_account=False, number__isnull=False)
                .select_related("account").prefetch_related(attempts).order_by("issued_on", "year", "sequence"))
    accounts: dict[int, AccountReceivables] = {}
    by_bucket, counts = [ZERO] * len(BUCKETS), [0] * len(BUCKETS)
    for invoice in invoices:
        age = max((today - invoice.issued_on).days, 0)
        bucket = bucket_of(age)
        row = accounts.setdefault(invoice.account_id, AccountReceivables(invoice.account_id, invoice.account.name))
        row.invoices.append(OpenInvoice(invoice, age, bucket))
        row.by_bucket[bucket] += invoice.total
        by_bucket[bucket] += invoice.total
        counts[bucket] += 1
    ordered = sorted(accounts.values(), key=lambda row: (-row.total, row.name))
    return Receivables(today=today, accounts=ordered, by_bucket=by_bucket, counts=counts)
