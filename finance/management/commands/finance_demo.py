"""Seed the finance area's demo: a finance login, and up to 16 months of books for 40 demo accounts (a few hundred
invoices: purchases, renewals, top-ups, credit notes; open ones with declined attempts; licenses with their
terms; token and credit ledgers). Bulk inserts, numbered in the real gap-free sequence; safe to run again
(the books are made once). `seed_demo` calls it.
"""

import datetime
import random
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Account, User
from finance.models import FINANCE_GROUP
from invoices.models import Invoice, InvoiceLine, InvoiceSequence, InvoiceStatusChange
from licenses.models import License, LicenseTerm, Purchase, RenewalGroup
from payments.models import CreditEntry, PaymentAttempt
from pictor_billing import clock
from pictor_billing.money import ZERO, to_money
from pictor_billing.pricing import TIER_LABELS, volume_rate
from tokens.models import TokenEntry

FINANCE_EMAIL, FINANCE_PASSWORD = "finance@pictor.example", "pictor-finance-2026"
DOMAIN = "books.demo.example"  # the demo accounts' billing emails: how a second run knows they are there
PRICES = {("basic", "monthly"): Decimal("49.00"), ("basic", "annual"): Decimal("490.00"),
          ("pro", "monthly"): Decimal("99.00"), ("pro", "annual"): Decimal("990.00"),
          ("premium", "monthly"): Decimal("149.00"), ("premium", "annual"): Decimal("1490.00")}
PACKAGES = [("Standard", 500, Decimal("45.00")), ("Large", 1000, Decimal("80.00")), ("Starter", 100, Decimal("10.00"))]
NAMES = ["Snapshot Studios", "Golden Hour Events", "Flashbulb Parties", "Mirror Booth Co", "Confetti Cam",
         "Boomerang Bros", "Selfie Station Ltd", "Retro Frames", "Glitter Lens", "Party Pixels", "Shutterbug Rentals",
         "Candid Corner", "Polaroid Palace", "Red Carpet Booths", "Happy Snaps", "Wedding Lens Co", "Neon Photo Bar",
         "Festival Frames", "Corporate Clicks", "Instant Memories", "Aperture Events", "Bokeh Booths",
         "Grin & Click", "Photo Fiesta", "Spotlight Selfies", "Vintage Vision", "Click Club", "Lumen Lounge",
         "Posers Paradise", "Memory Lane Booths", "Pixel Party Co", "Strike a Pose", "Cheese Please Events",
         "Backdrop Brothers", "Focus Fun", "Magic Mirror Hire", "Smile Factory", "Photo Phactory", "Say Cheese Ltd",
         "=HYPERLINK(\"http://example.com\",\"Formula Fun\")"]


def _add_months(day: datetime.date, months: int) -> datetime.date:
    index = day.year * 12 + day.month - 1 + months
    return datetime.date(index // 12, index % 12 + 1, day.day)  # days 1-28 only


@dataclass
class _Doc:
    """An invoice to insert, with what hangs off it."""

    account: Account
    kind: str
    issued_on: datetime.date
    description: str
    lines: list[tuple]  # (kind, description, quantity, unit_price, amount)
    status: str = Invoice.PAID
    subtotal: Decimal = ZERO
    discount_total: Decimal = ZERO
    credit_applied: Decimal = ZERO
    refers_to: "_Doc | None" = None
    declined: int = 0  # failed payment attempts behind it
    purchase: dict | None = None
    terms: list = field(default_factory=list)  # (license spec, starts_on, ends_on, paid)
    invoice: Invoice | None = None

    @property
    def total(self) -> Decimal:
        return sum((line[4] for line in self.lines), ZERO)


class Command(BaseCommand):
    help = "Seed the finance demo: a finance login and a year of demo books. Idempotent."

    @transaction.atomic
    def handle(self, *args, **options):
        user = User.objects.filter(email=FINANCE_EMAIL).first()
        if user is None:
            user = User.objects.create_user(email=FINANCE_EMAIL, password=FINANCE_PASSWORD, is_staff=True)
        user.groups.add(Group.objects.get(name=FINANCE_GROUP))
        if not Account.objects.filter(billing_email__endswith=f"@{DOMAIN}").exists():
            count = self._books(clock.today())
            self.stdout.write(f"  (finance demo: {count} invoices in {len(NAMES)} demo accounts)")
        self.stdout.write(f"  finance staff (/finance/): {FINANCE_EMAIL} / {FINANCE_PASSWORD}")

    def _books(self, today: datetime.date) -> int:
        rng = random.Random(2026)
        accounts = Account.objects.bulk_create(
            Account(name=name, billing_email=f"billing{i}@{DOMAIN}", address_line1=f"{i + 1} Demo Street",
                    city="Springfield", postal_code="12345", country="United States")
            for i, name in enumerate(NAMES))
        docs, licenses = [], []  # licenses: dicts, turned into rows once their purchases exist
        for account in accounts:
            docs += self._account_books(rng, account, today, licenses)
        self._insert(docs, licenses, today, rng)
        return len(docs)

    def _account_books(self, rng, account, today, licenses) -> list[_Doc]:
        period = "annual" if rng.random() < 0.2 else "monthly"
        tier = rng.choice(["basic", "pro", "pro", "premium"])
        quantity = rng.choice([1, 1, 2, 3, 4, 6, 8, 12])
        start = _add_months(datetime.date(today.year, today.month, rng.randint(1, 28)), -rng.randint(2, 16))
        if start > today:
            start = _add_months(start, -1)
        docs = [self._purchase(account, tier, period, quantity, start, licenses)]
        group_licenses = list(docs[0].purchase["licenses"])
        churn_at = rng.randint(2, 8) if rng.random() < 0.15 else None
        expand_at = rng.randint(1, 4) if rng.random() < 0.25 else None
        cancel_at = rng.randint(2, 9) if rng.random() < 0.25 else None
        step = 12 if period == "annual" else 1
        month = step
        while _add_months(start, month) <= today:
            billing_date = _add_months(start, month)
            if cancel_at is not None and month == cancel_at * step and len(group_licenses) > 1:
                gone = group_licenses.pop()  # one cancelled: it ends on this billing date instead of renewing
                gone.update(status=License.EXPIRED, ended_on=billing_date, period_end=billing_date)
            count = len(group_licenses)
            rate = volume_rate(count)
            price = PRICES[(tier, period)]
            subtotal = price * count
            discount = to_money(subtotal * rate)
            lines = [("item", f"{count} × {TIER_LABELS[tier]} {period}", count, price, subtotal)]
            if discount:
                lines.append(("volume_discount", f"Volume discount {int(rate * 100)}% ({count} active licenses)",
                              1, -discount, -discount))
            churned = churn_at is not None and month >= churn_at
            renewal = _Doc(account, Invoice.RENEWAL, billing_date,
                           f"Renewal of {count} license{'s' if count > 1 else ''} on {billing_date:%b} "
                           f"{billing_date.day}, {billing_date.year}", lines, subtotal=subtotal,
                           discount_total=discount, status=Invoice.OPEN if churned else Invoice.PAID,
                           declined=rng.randint(1, 3) if churned else 0)
            docs.append(renewal)
            next_date = _add_months(billing_date, step)
            for spec in group_licenses:
                spec["rate"] = rate
                if churned:
                    spec.update(status=License.EXPIRED, ended_on=billing_date, period_end=billing_date)
                else:
                    paid = to_money(price * (1 - rate))
                    renewal.terms.append((spec, billing_date, next_date, paid))
                    spec.update(period_start=billing_date, period_end=next_date)
            if churned:
                break
            if expand_at is not None and month == expand_at * step and period == "monthly":
                # More licenses bought on a billing date: they renew with the rest from the next one.
                extra = self._purchase(account, tier, period, rng.randint(1, 3), billing_date, licenses)
                docs.append(extra)
                group_licenses += extra.purchase["licenses"]
            month += step
        paid_docs = [doc for doc in docs if doc.status == Invoice.PAID]
        if rng.random() < 0.5:
            for _ in range(rng.randint(1, 3)):
                name, tokens, price = rng.choice(PACKAGES)
                day = start + datetime.timedelta(days=rng.randint(0, max((today - start).days, 0)))
                top_up = _Doc(account, Invoice.TOP_UP, day, f"Token top-up: {name} ({tokens:,} tokens)",
                              [("item", f"{name}: {tokens:,} tokens", 1, price, price)], subtotal=price)
                top_up.purchase = {"tokens": tokens}
                docs.append(top_up)
        if paid_docs and rng.random() < 0.2:
            target = rng.choice(paid_docs)
            amount = to_money(min(Decimal("25.00"), target.total))
            day = min(target.issued_on + datetime.timedelta(days=rng.randint(1, 20)), today)
            note = _Doc(account, Invoice.CREDIT_NOTE, day, "Credit note for {number}: goodwill credit",
                        [("credit", "Goodwill credit (added to your credit balance)", 1, -amount, -amount)],
                        status=Invoice.CREDITED, subtotal=-amount, refers_to=target)
            docs.append(note)
        return docs

    def _purchase(self, account, tier, period, quantity, day, licenses) -> _Doc:
        price = PRICES[(tier, period)]
        subtotal = price * quantity
        rate = volume_rate(quantity)
        discount = to_money(subtotal * rate)
        lines = [("item", f"{quantity} × {TIER_LABELS[tier]} {period}", quantity, price, subtotal)]
        if discount:
            lines.append(("volume_discount", f"Volume discount {int(rate * 100)}% ({quantity} active licenses)", 1,
                          -discount, -discount))
        ends = _add_months(day, 12 if period == "annual" else 1)
        specs = [{"tier": tier, "period": period, "list_price": price, "rate": rate, "purchased_on": day,
                  "period_start": day, "period_end": ends, "status": License.ACTIVE, "ended_on": None}
                 for _ in range(quantity)]
        licenses.extend(specs)
        doc = _Doc(account, Invoice.PURCHASE, day,
                   f"{quantity} × {TIER_LABELS[tier]} {period} license{'s' if quantity > 1 else ''}", lines,
                   subtotal=subtotal, discount_total=discount)
        doc.purchase = {"tier": tier, "period": period, "quantity": quantity, "licenses": specs}
        doc.terms = [(spec, day, ends, to_money(price * (1 - rate))) for spec in specs]
        return doc

    def _insert(self, docs: list[_Doc], licenses: list[dict], today, rng) -> None:
        docs.sort(key=lambda doc: (doc.issued_on, doc.kind == Invoice.CREDIT_NOTE))
        seller = settings.SELLER
        sequences = {}
        for year in sorted({doc.issued_on.year for doc in docs}):
            InvoiceSequence.objects.get_or_create(series="", year=year)
            sequences[year] = InvoiceSequence.objects.select_for_update().get(series="", year=year)
        rows = []
        for doc in docs:
            sequence = sequences[doc.issued_on.year]
            sequence.last_number += 1
            number = f"PB-{doc.issued_on.year}-{sequence.last_number:06d}"
            refers_to = doc.refers_to.invoice if doc.refers_to else None
            moment = datetime.datetime.combine(doc.issued_on, datetime.time(9, rng.randint(0, 59)), datetime.UTC)
            doc.invoice = Invoice(
                account=doc.account, number=number, series="", year=doc.issued_on.year,
                sequence=sequence.last_number, kind=doc.kind, issued_on=doc.issued_on,
                description=doc.description.replace("{number}", refers_to.number if refers_to else "")[:200],
                status=doc.status, subtotal=doc.subtotal, discount_total=doc.discount_total,
                credit_applied=doc.credit_applied, total=doc.total, refers_to=refers_to,
                buyer_name=doc.account.name, buyer_address="\n".join(doc.account.address_lines),
                seller_name=seller["name"], seller_address=seller["address"], seller_email=seller["email"],
                seller_vat_id=seller["vat_id"], created_at=moment)
            if refers_to is None:
                rows.append(doc.invoice)
            else:  # a credit note names an invoice saved before it
                Invoice.objects.bulk_create(rows)
                rows = [doc.invoice]
        Invoice.objects.bulk_create(rows)
        for sequence in sequences.values():
            InvoiceSequence.objects.filter(pk=sequence.pk).update(last_number=sequence.last_number)
        InvoiceLine.objects.bulk_create(
            InvoiceLine(invoice=doc.invoice, position=position, kind=kind, description=text, quantity=quantity,
                        unit_price=unit, amount=amount)
            for doc in docs for position, (kind, text, quantity, unit, amount) in enumerate(doc.lines, start=1))
        InvoiceStatusChange.objects.bulk_create(
            InvoiceStatusChange(invoice=doc.invoice, from_status="", to_status=doc.status, reason="Issued (demo)",
                                changed_at=doc.invoice.created_at) for doc in docs)
        attempts = [PaymentAttempt(account=doc.account, invoice=doc.invoice, purpose=PaymentAttempt.RENEWAL,
                                   kind=PaymentAttempt.CHARGE, amount=doc.total, description=doc.invoice.description,
                                   off_session=True, idempotency_key=f"demo:{doc.invoice.number}:{n}",
                                   status=PaymentAttempt.FAILED, gateway="sandbox",
                                   failure_reason="Your card was declined.",
                                   created_at=doc.invoice.created_at + datetime.timedelta(days=2 * n))
                    for doc in docs for n in range(doc.declined)]
        PaymentAttempt.objects.bulk_create(attempts)
        self._licenses(docs, licenses)
        self._ledgers(docs, rng)

    def _licenses(self, docs: list[_Doc], licenses: list[dict]) -> None:
        purchases = [doc for doc in docs if doc.kind == Invoice.PURCHASE]
        rows = Purchase.objects.bulk_create(
            Purchase(account=doc.account, token=f"demo:{doc.invoice.number}", tier=doc.purchase["tier"],
                     period=doc.purchase["period"], quantity=doc.purchase["quantity"], total_due=doc.total,
                     invoice=doc.invoice, created_at=doc.invoice.created_at) for doc in purchases)
        groups = {}
        for doc, purchase in zip(purchases, rows, strict=True):
            doc.purchase["row"] = purchase
            key = (doc.account.pk, "monthly") if doc.purchase["period"] == "monthly" else (doc.invoice.pk, "annual")
            if key not in groups:
                specs = doc.purchase["licenses"]
                ended = specs[0]["ended_on"] if all(spec["ended_on"] for spec in specs) else None
                groups[key] = RenewalGroup(account=doc.account, period=doc.purchase["period"], anchor_on=doc.issued_on,
                                           ended_on=ended)
            for spec in doc.purchase["licenses"]:
                spec["group"], spec["purchase"], spec["account"] = groups[key], purchase, doc.account
        RenewalGroup.objects.bulk_create(groups.values())
        for spec in licenses:
            spec["row"] = License(account=spec["account"], purchase=spec["purchase"], group=spec["group"],
                                  tier=spec["tier"], period=spec["period"], status=spec["status"],
                                  purchased_on=spec["purchased_on"], period_start=spec["period_start"],
                                  period_end=spec["period_end"], list_price=spec["list_price"],
                                  discount_rate=spec["rate"], ended_on=spec["ended_on"])
        License.objects.bulk_create(spec["row"] for spec in licenses)
        LicenseTerm.objects.bulk_create(
            LicenseTerm(license=spec["row"], kind=LicenseTerm.PURCHASE if doc.kind == Invoice.PURCHASE
                        else LicenseTerm.RENEWAL, starts_on=starts_on, ends_on=ends_on, tier=spec["tier"],
                        period=spec["period"], list_price=spec["list_price"], rate=spec["rate"], paid=paid,
                        invoice=doc.invoice)
            for doc in docs for spec, starts_on, ends_on, paid in doc.terms)

    def _ledgers(self, docs: list[_Doc], rng) -> None:
        entries, credits, balances = [], [], {}
        for doc in docs:
            account = doc.account
            if account.pk not in balances:
                balances[account.pk] = 50
                entries.append(TokenEntry(account=account, kind=TokenEntry.SIGNUP_GRANT, amount=50, balance_after=50,
                                          created_at=doc.invoice.created_at))
            if doc.kind == Invoice.TOP_UP:
                balances[account.pk] += doc.purchase["tokens"]
                entries.append(TokenEntry(account=account, kind=TokenEntry.TOP_UP, amount=doc.purchase["tokens"],
                                          balance_after=balances[account.pk], invoice=doc.invoice,
                                          created_at=doc.invoice.created_at))
                used = rng.randint(0, balances[account.pk])
                if used:
                    balances[account.pk] -= used
                    entries.append(TokenEntry(account=account, kind=TokenEntry.USAGE, amount=-used,
                                              balance_after=balances[account.pk], output_type="ai_image",
                                              quantity=used, created_at=doc.invoice.created_at
                                              + datetime.timedelta(hours=6)))
            if doc.kind == Invoice.CREDIT_NOTE:
                credits.append(CreditEntry(account=account, kind=CreditEntry.ADMIN_CREDIT, amount=-doc.total,
                                           invoice=doc.invoice, note="Goodwill credit (demo)",
                                           created_at=doc.invoice.created_at))
        TokenEntry.objects.bulk_create(entries)
        CreditEntry.objects.bulk_create(credits)
