"""Invoices and credit notes: numbered gap-free per year, stored with their lines and totals, never changed
once issued; only the payment status moves, through `invoices.services.invoice_status_set`, which records
every change."""

from django.db import models

from pictor_billing import clock


class ImmutableError(Exception):
    """Raised on any attempt to change or delete an issued invoice or its lines."""


class AppendOnlyQuerySet(models.QuerySet):
    """Rows that are only ever added: bulk paths skip save() and delete(), so they are closed too."""

    def update(self, **kwargs):
        raise ImmutableError("issued invoices and their history never change; issue a credit note instead")

    def delete(self):
        raise ImmutableError("issued invoices and their history are never deleted")


class ImmutableQuerySet(AppendOnlyQuerySet):
    """Invoices: append-only, but for the two moves the issuing and status services make."""

    def _status_move(self, *, from_status: str, to_status: str) -> int:
        """Move the payment status, and nothing else; for invoices.services.invoice_status_set only."""
        return models.QuerySet.update(self.filter(status=from_status), status=to_status)

    def _number(self, *, sequence: int, number: str) -> int:
        """Give an invoice being issued its number, once; for invoices.services.issuing_invoice only."""
        return models.QuerySet.update(self.filter(sequence__isnull=True), sequence=sequence, number=number)


# Every invoice number starts so (PB-2027-000001, PB-TEST-2027-000001), and has it nowhere else.
NUMBER_PREFIX = "PB-"


def number_prefix(series: str, year: int) -> str:
    """The start of every number in a series and year, before its six-digit sequence."""
    return f"{NUMBER_PREFIX}{series}-{year}-" if series else f"{NUMBER_PREFIX}{year}-"


class InvoiceSequence(models.Model):
    """The last number used in a series and year; bumped as the last step of the issuing transaction.

    The series is "" for real accounts and "TEST" for test accounts (PB-TEST-2027-000001), so test
    clocks never take a number from the real, gap-free sequence.
    """

    series = models.CharField(max_length=10, blank=True, default="")
    year = models.PositiveSmallIntegerField()
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["series", "year"], name="one_sequence_per_series_year")]

    def __str__(self) -> str:
        return f"{self.series or 'PB'} {self.year}: {self.last_number}"


class Invoice(models.Model):
    """An issued invoice or credit note. Amounts are USD; `total` is charged (positive) or credited (negative).

    A credit note (kind CREDIT_NOTE) takes a number from the same sequence, in the year it is
    issued, has a negative total and names the invoice it corrects in `refers_to`.
    """

    PAID, OPEN, FAILED, CREDITED, VOID = "paid", "open", "failed", "credited", "void"
    STATUS_CHOICES = [(PAID, "Paid"), (OPEN, "Open"), (FAILED, "Failed"), (CREDITED, "Credited"), (VOID, "Void")]
    PURCHASE, RENEWAL, TOP_UP, CREDIT_NOTE, CHANGE = "purchase", "renewal", "top_up", "credit_note", "change"
    KIND_CHOICES = [(PURCHASE, "License purchase"), (RENEWAL, "Renewal"), (TOP_UP, "Token top-up"),
                    (CREDIT_NOTE, "Credit note"), (CHANGE, "Plan change")]

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="invoices")
    # Numbered as the last step of the transaction that issues it (invoices.services.issuing_invoice),
    # so the year's sequence is locked only for an instant; never empty once committed.
    number = models.CharField(max_length=20, unique=True, null=True)  # noqa: DJ001 - unique only once numbered
    series = models.CharField(max_length=10, blank=True, default="", help_text="TEST for a test account.")
    year = models.PositiveSmallIntegerField()
    sequence = models.PositiveIntegerField(null=True)
    service_from = models.DateField(null=True, blank=True, help_text="A renewal's service period.")
    service_to = models.DateField(null=True, blank=True)
    kind = models.CharField(max_length=20, choices=KIND_CHOICES)
    issued_on = models.DateField()
    description = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES)
    subtotal = models.DecimalField(max_digits=12, decimal_places=2)
    discount_total = models.DecimalField(max_digits=12, decimal_places=2)
    credit_applied = models.DecimalField(max_digits=12, decimal_places=2)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    refers_to = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True,
                                  related_name="credit_notes", help_text="The invoice a credit note corrects.")
    # Copied when issued, so later edits to the account or settings never alter it.
    buyer_name = models.CharField(max_length=200)
    buyer_address = models.TextField(blank=True)
    buyer_vat_id = models.CharField(max_length=40, blank=True)
    seller_name = models.CharField(max_length=200)
    seller_address = models.TextField()
    seller_email = models.CharField(max_length=200, blank=True)
    seller_vat_id = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        ordering = ["-issued_on", "-year", "-sequence"]
        constraints = [models.UniqueConstraint(fields=["series", "year", "sequence"], name="gap_free_per_year")]
        # The Invoices tab's order, so a page of an account's thousands of invoices is read off the index.
        indexes = [models.Index(fields=["account", "-issued_on", "-year", "-sequence"], name="invoice_account_tab")]

    def __str__(self) -> str:
        return self.number

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableError("issued invoices never change; issue a credit invoice instead")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableError("issued invoices are never deleted")

    @property
    def status_label(self) -> str:
        """Paid, Open, Failed, Credited or Void: get_status_display, without its per-call hashing (tables)."""
        return dict(self.STATUS_CHOICES)[self.status]

    @property
    def filename(self) -> str:
        return f"{self.number}.pdf"

    @property
    def is_credit_note(self) -> bool:
        return self.kind == self.CREDIT_NOTE

    @property
    def title(self) -> str:
        """What the document calls itself: "Invoice" or "Credit note"."""
        return "Credit note" if self.is_credit_note else "Invoice"


class InvoiceLine(models.Model):
    """One line: amount is signed (discounts and credits negative)."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=20)
    description = models.CharField(max_length=300)
    quantity = models.IntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)
    amount = models.DecimalField(max_digits=12, decimal_places=2)

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        ordering = ["position"]

    def __str__(self) -> str:
        return self.description

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableError("issued invoice lines never change")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableError("issued invoice lines are never deleted")


class InvoiceStatusChange(models.Model):
    """One move of an invoice's payment status: from, to, when, why, and the payment attempt behind it.

    The attempt is named by its id only: invoices sit below payments, which know the invoices
    they pay (STYLE.md, Layers).
    """

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="status_changes")
    from_status = models.CharField(max_length=10, blank=True, help_text="Empty for the issue itself.")
    to_status = models.CharField(max_length=10, choices=Invoice.STATUS_CHOICES)
    changed_at = models.DateTimeField(default=clock.now)
    reason = models.CharField(max_length=200)
    attempt_id = models.BigIntegerField(null=True, blank=True, help_text="The payment attempt, if one moved it.")
    changed_by = models.ForeignKey("accounts.User", on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["changed_at", "id"]

    def __str__(self) -> str:
        return f"{self.invoice_id}: {self.from_status or 'issued'} → {self.to_status}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableError("status history is never rewritten")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableError("status history is never deleted")
