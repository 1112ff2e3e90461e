"""Issuing invoices and credit notes, and moving their payment status.

Numbers are gap-free per year: a number is taken inside the issuing transaction (a rolled-back
transaction gives it back), as its very last statement (`issuing_invoice`) — on PostgreSQL sent with
the COMMIT itself, in one round trip — so the year's sequence row stays locked only for an instant.
Buyer and seller are copied onto the document, which never changes again; only its payment status
moves, through `invoice_status_set`, which records every change.
"""

import datetime
from contextlib import contextmanager
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Sum

from invoices.models import Invoice, InvoiceLine, InvoiceSequence, InvoiceStatusChange, number_prefix
from pictor_billing import clock
from pictor_billing.bulk import rows_update
from pictor_billing.money import ZERO
from pictor_billing.pricing import QuoteLine

# The moves the rules allow ("Invoices"): paid when an attempt succeeds, failed after the last dunning
# attempt, void by an admin, credited once fully refunded.
STATUS_MOVES = {
    (Invoice.OPEN, Invoice.PAID),
    (Invoice.OPEN, Invoice.FAILED),
    (Invoice.OPEN, Invoice.VOID),
    (Invoice.PAID, Invoice.CREDITED),
}


class InvoiceStatusRefused(Exception):
    """The invoice cannot move from its status to the one asked for."""


class CreditNoteRefused(Exception):
    """The credit notes against an invoice would add up to more than its total."""


def _number_take(invoice: Invoice) -> None:
    """Give the invoice the next number of its year, as the last statement before the caller commits.

    The year's sequence row stays locked from here to the commit: on PostgreSQL taking the number
    and writing it onto the invoice is one statement, so that is one round trip. A rolled-back
    transaction gives its number back, so numbers stay gap-free.
    """
    year, series = invoice.year, invoice.series
    prefix = number_prefix(series, year)
    sequences = connection.ops.quote_name(InvoiceSequence._meta.db_table)
    invoices = connection.ops.quote_name(Invoice._meta.db_table)
    if connection.vendor == "postgresql" and hasattr(connection, "commit_rider") and connection.commit_rider(
        [f"INSERT INTO {sequences} (series, year, last_number) VALUES (%s, %s, 0) "  # noqa: S608
         "ON CONFLICT (series, year) DO NOTHING",
         f"WITH taken AS (UPDATE {sequences} SET last_number = last_number + 1 "
         "WHERE series = %s AND year = %s RETURNING last_number) "
         f"UPDATE {invoices} SET sequence = taken.last_number, number = %s || lpad(taken.last_number::text, 6, '0') "
         f"FROM taken WHERE {invoices}.id = %s AND {invoices}.sequence IS NULL RETURNING taken.last_number"],
        [series, year, series, year, prefix, invoice.pk],
        lambda rows: _numbered(invoice, prefix, rows),
    ):
        # This block's end is the transaction's COMMIT: the number is taken in the same round trip,
        # so the year's sequence row is locked only while the server commits (pictor_billing.postgresql).
        return
    for _ in range(2):
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"WITH taken AS (UPDATE {sequences} SET last_number = last_number + 1 "  # noqa: S608
                    "WHERE series = %s AND year = %s RETURNING last_number) "
                    f"UPDATE {invoices} SET sequence = taken.last_number, "
                    "number = %s || lpad(taken.last_number::text, 6, '0') "
                    f"FROM taken WHERE {invoices}.id = %s AND {invoices}.sequence IS NULL RETURNING taken.last_number",
                    [series, year, prefix, invoice.pk])
                row = cursor.fetchone()
            else:
                cursor.execute(f"UPDATE {sequences} SET last_number = last_number + 1 "  # noqa: S608
                               "WHERE series = %s AND year = %s RETURNING last_number", [series, year])
                row = cursor.fetchone()
                if row is not None:
                    Invoice.objects.filter(pk=invoice.pk)._number(sequence=row[0], number=f"{prefix}{row[0]:06d}")
        if row is not None:
            invoice.sequence, invoice.number = row[0], f"{prefix}{row[0]:06d}"
            return
        InvoiceSequence.objects.get_or_create(series=series, year=year)  # the first of its year: then number it
    raise RuntimeError(f"could not number an invoice of {year}")


def _numbered(invoice: Invoice, prefix: str, rows: list[tuple]) -> None:
    """The number a COMMIT took for the invoice, onto the caller's copy."""
    if len(rows) != 1:
        raise RuntimeError(f"invoice {invoice.pk} was committed without its number")
    invoice.sequence, invoice.number = rows[0][0], f"{prefix}{rows[0][0]:06d}"


@contextmanager
def issuing_invoice(
    *,
    account,
    kind: str,
    description: str,
    lines: tuple[QuoteLine, ...] | list[QuoteLine],
    subtotal: Decimal,
    discount_total: Decimal,
    credit_applied: Decimal,
    total: Decimal,
    status: str,
    issued_on: datetime.date,
    status_reason: str = "Issued",
    refers_to: Invoice | None = None,
    attempt_id: int | None = None,
    user=None,
    service_from: datetime.date | None = None,
    service_to: datetime.date | None = None,
):
    """Issue an invoice inside the caller's transaction: its rows now, its number as the block ends.

    Inside the block the caller writes what refers to the invoice (the purchase, the credit
    entries…); the block must end the caller's transaction's work, so the year's number is
    locked only for the instant between taking it and the commit. The stored figures never
    change afterwards; the issue is the first entry of its status history.
    """
    if sum((line.amount for line in lines), ZERO) != total:
        raise ValueError("invoice lines must sum to its total")
    if not connection.in_atomic_block:
        raise RuntimeError("an invoice is issued inside the transaction that records what it bills")
    seller = settings.SELLER
    now = clock.now(account)
    invoice = Invoice.objects.create(
        account=account, series=account.invoice_series, year=issued_on.year, kind=kind,
        service_from=service_from, service_to=service_to, issued_on=issued_on, description=description[:200],
        status=status, subtotal=subtotal, discount_total=discount_total, credit_applied=credit_applied, total=total,
        refers_to=refers_to, buyer_name=account.name, buyer_address="\n".join(account.address_lines),
        buyer_vat_id=account.vat_id, seller_name=seller["name"], seller_address=seller["address"],
        seller_email=seller["email"], seller_vat_id=seller["vat_id"], created_at=now,
    )
    InvoiceLine.objects.bulk_create(
        InvoiceLine(invoice=invoice, position=position, kind=line.kind, description=line.description[:300],
                    quantity=line.quantity, unit_price=line.unit_price, amount=line.amount)
        for position, line in enumerate(lines, start=1)
    )
    InvoiceStatusChange.objects.create(invoice=invoice, from_status="", to_status=status, reason=status_reason[:200],
                                       attempt_id=attempt_id, changed_by=user, changed_at=now)
    yield invoice
    _number_take(invoice)


def invoice_issue(**document) -> Invoice:
    """Issue an invoice with its lines, numbered at once (`issuing_invoice` with nothing else to write)."""
    # Checked before any write, so a refusal leaves the caller's transaction usable.
    if sum((line.amount for line in document["lines"]), ZERO) != document["total"]:
        raise ValueError("invoice lines must sum to its total")
    with transaction.atomic(savepoint=False), issuing_invoice(**document) as invoice:
        pass
    return invoice


@contextmanager
def issuing_invoices(documents: list[dict]):
    """`issuing_invoice` for many invoices at once (the billing run's batches): every row in three
    inserts now, every number as the block ends, one sequence update per series and year.

    Each document takes `issuing_invoice`'s keywords but `attempt_id` and `user`; the invoices are
    yielded in the documents' order and numbered in that order. The same rule holds: the block ends
    the caller's transaction's work, so each year's number is locked only until its commit.
    """
    for document in documents:
        if sum((line.amount for line in document["lines"]), ZERO) != document["total"]:
            raise ValueError("invoice lines must sum to its total")
    if not connection.in_atomic_block:
        raise RuntimeError("an invoice is issued inside the transaction that records what it bills")
    seller = settings.SELLER
    invoices = Invoice.objects.bulk_create([
        Invoice(account=doc["account"], series=doc["account"].invoice_series, year=doc["issued_on"].year,
                kind=doc["kind"], service_from=doc.get("service_from"), service_to=doc.get("service_to"),
                issued_on=doc["issued_on"], description=doc["description"][:200], status=doc["status"],
                subtotal=doc["subtotal"], discount_total=doc["discount_total"], credit_applied=doc["credit_applied"],
                total=doc["total"], refers_to=doc.get("refers_to"), buyer_name=doc["account"].name,
                buyer_address="\n".join(doc["account"].address_lines), buyer_vat_id=doc["account"].vat_id,
                seller_name=seller["name"], seller_address=seller["address"], seller_email=seller["email"],
                seller_vat_id=seller["vat_id"], created_at=clock.now(doc["account"]))
        for doc in documents])
    InvoiceLine.objects.bulk_create(
        InvoiceLine(invoice=invoice, position=position, kind=line.kind, description=line.description[:300],
                    quantity=line.quantity, unit_price=line.unit_price, amount=line.amount)
        for invoice, doc in zip(invoices, documents, strict=True)
        for position, line in enumerate(doc["lines"], start=1))
    InvoiceStatusChange.objects.bulk_create(
        InvoiceStatusChange(invoice=invoice, from_status="", to_status=invoice.status,
                            reason=doc.get("status_reason", "Issued")[:200], changed_at=invoice.created_at)
        for invoice, doc in zip(invoices, documents, strict=True))
    yield invoices
    _numbers_take(invoices)


def _numbers_take(invoices: list[Invoice]) -> None:
    """Number these invoices, in their order, as the last statements before the caller commits: one
    statement per series and year takes all its numbers and writes them (on PostgreSQL), its
    sequence rows locked in one order, so two batches cannot wait on each other."""
    by_sequence: dict[tuple[str, int], list[Invoice]] = {}
    for invoice in invoices:
        by_sequence.setdefault((invoice.series, invoice.year), []).append(invoice)
    sequences = connection.ops.quote_name(InvoiceSequence._meta.db_table)
    table = connection.ops.quote_name(Invoice._meta.db_table)
    for (series, year), batch in sorted(by_sequence.items()):
        prefix, count = number_prefix(series, year), len(batch)
        for _ in range(2):
            with connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    cursor.execute(
                        f"WITH taken AS (UPDATE {sequences} SET last_number = last_number + %s "  # noqa: S608
                        "WHERE series = %s AND year = %s RETURNING last_number - %s AS base) "
                        f"UPDATE {table} SET sequence = taken.base + v.k, "
                        "number = %s || lpad((taken.base + v.k)::text, 6, '0') "
                        "FROM taken, unnest(%s::bigint[]) WITH ORDINALITY AS v(id, k) "
                        f"WHERE {table}.id = v.id AND {table}.sequence IS NULL RETURNING taken.base",
                        [count, series, year, count, prefix, [invoice.pk for invoice in batch]])
                    rows = cursor.fetchall()
                    base = rows[0][0] if len(rows) == count else None
                    if rows and base is None:
                        raise RuntimeError(f"could not number {count} invoices of {year}")
                else:
                    cursor.execute(f"UPDATE {sequences} SET last_number = last_number + %s "  # noqa: S608
                                   "WHERE series = %s AND year = %s RETURNING last_number - %s",
                                   [count, series, year, count])
                    row = cursor.fetchone()
                    base = row[0] if row is not None else None
            if base is not None:
                for k, invoice in enumerate(batch, start=1):
                    invoice.sequence, invoice.number = base + k, f"{prefix}{base + k:06d}"
                if connection.vendor != "postgresql":  # the numbers taken, written in one statement
                    rows_update(Invoice, batch, ["sequence", "number"])
                break
            InvoiceSequence.objects.get_or_create(series=series, year=year)  # the first of its year: then number them
        else:
            raise RuntimeError(f"could not number the invoices of {year}")


def invoice_status_set(*, invoice: Invoice, to_status: str, reason: str, attempt_id: int | None = None,
                       user=None) -> Invoice:
    """Move an invoice's payment status, and record the move (from, to, when, why, the attempt).

    Moving to the status it already has is a no-op (a retried settle step must not fail);
    any move the rules do not allow raises InvoiceStatusRefused, having written nothing, so the
    caller's transaction stays usable. The move itself is one conditional UPDATE from the status
    the caller's copy shows; only when that copy is stale is the row read again, locked.
    """
    # No savepoint (two round trips on every payment): a refusal is raised after the block, which
    # has then written nothing, so it never marks the caller's transaction for rollback.
    refusal = ""
    with transaction.atomic(savepoint=False):
        from_status = invoice.status
        moved = (from_status, to_status) in STATUS_MOVES and Invoice.objects.filter(pk=invoice.pk)._status_move(
            from_status=from_status, to_status=to_status)
        if not moved:
            current = Invoice.objects.select_for_update().get(pk=invoice.pk)
            if current.status == to_status:
                return current
            if (current.status, to_status) not in STATUS_MOVES:
                refusal = (f"{current.number} is {current.get_status_display().lower()}; "
                           f"it cannot become {dict(Invoice.STATUS_CHOICES)[to_status].lower()}.")
            else:
                from_status = current.status
                Invoice.objects.filter(pk=invoice.pk)._status_move(from_status=from_status, to_status=to_status)
        if not refusal:
            InvoiceStatusChange.objects.create(invoice=invoice, from_status=from_status, to_status=to_status,
                                               reason=reason[:200], attempt_id=attempt_id, changed_by=user,
                                               changed_at=clock.now(invoice.account))
    if refusal:
        raise InvoiceStatusRefused(refusal)
    invoice.status = to_status
    return invoice


@transaction.atomic
def invoices_status_set(*, moves: list[tuple[Invoice, str, str, int | None]]) -> list[Invoice]:
    """`invoice_status_set` for many invoices in one transaction: each move is (invoice, to status,
    reason, attempt id). The invoices are locked and read again first, so each moves from the status it
    has now, in one UPDATE per kind of move, and each move is recorded. One already there is left as it
    is; those the rules do not let move are returned (where `invoice_status_set` would refuse)."""
    if not moves:
        return []
    current = dict(Invoice.objects.select_for_update().filter(pk__in=[invoice.pk for invoice, *_ in moves])
                   .order_by("pk").values_list("pk", "status"))
    refused, changes, by_move = [], [], {}
    for invoice, to_status, reason, attempt_id in moves:
        from_status = current[invoice.pk]
        if from_status == to_status:
            invoice.status = to_status
        elif (from_status, to_status) not in STATUS_MOVES:
            invoice.status = from_status
            refused.append(invoice)
        else:
            by_move.setdefault((from_status, to_status), []).append(invoice.pk)
            changes.append(InvoiceStatusChange(invoice=invoice, from_status=from_status, to_status=to_status,
                                               reason=reason[:200], attempt_id=attempt_id,
                                               changed_at=clock.now(invoice.account)))
            invoice.status = current[invoice.pk] = to_status
    for (from_status, to_status), ids in by_move.items():
        Invoice.objects.filter(pk__in=ids)._status_move(from_status=from_status, to_status=to_status)
    InvoiceStatusChange.objects.bulk_create(changes)
    return refused


def credited_so_far(invoice: Invoice) -> Decimal:
    """What the credit notes issued against this invoice add up to, as a positive amount."""
    total = Invoice.objects.filter(refers_to=invoice, kind=Invoice.CREDIT_NOTE).aggregate(s=Sum("total"))["s"]
    return -(total or ZERO)


@transaction.atomic
def credit_note_issue(*, invoice: Invoice, lines: list[QuoteLine], description: str, reason: str,
                      user=None, attempt_id: int | None = None) -> Invoice:
    """Issue a credit note correcting `invoice`: negative lines, numbered in the year it is issued.

    The credit notes against one invoice never add up to more than its total (CreditNoteRefused).
    The invoice row is locked, so two credit notes racing cannot both pass that check.
    """
    invoice = Invoice.objects.select_for_update().select_related("account").get(pk=invoice.pk)
    if invoice.is_credit_note:
        raise CreditNoteRefused("A credit note corrects an invoice, not another credit note.")
    total = sum((line.amount for line in lines), ZERO)
    if total >= 0 or any(line.amount > 0 for line in lines):
        raise CreditNoteRefused("A credit note takes amounts off: its lines must be negative.")
    left = invoice.total - credited_so_far(invoice)
    if -total > left:
        raise CreditNoteRefused(f"{invoice.number} has ${left} left to credit; ${-total} is more than that.")
    account = invoice.account
    return invoice_issue(
        account=account, kind=Invoice.CREDIT_NOTE, description=description, lines=lines,
        subtotal=total, discount_total=ZERO, credit_applied=ZERO, total=total, status=Invoice.CREDITED,
        issued_on=clock.today(account), status_reason=reason, refers_to=invoice, attempt_id=attempt_id, user=user,
    )
