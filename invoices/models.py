"""Invoices: numbered gap-free per year, stored with their lines and totals, never changed once issued."""

from django.db import models

from pictor_billing import clock


class ImmutableError(Exception):
    """Raised on any attempt to change or delete an issued invoice or its lines."""


class ImmutableQuerySet(models.QuerySet):
    # Bulk paths skip save() and delete(), so they are closed too.
    def update(self, **kwargs):
        raise ImmutableError("issued invoices never change; issue a credit invoice instead")

    def delete(self):
        raise ImmutableError("issued invoices are never deleted")


class InvoiceSequence(models.Model):
    """The last number used in a year; locked and bumped inside the issuing transaction."""

    year = models.PositiveSmallIntegerField(primary_key=True)
    last_number = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last_number}"


class Invoice(models.Model):
    """An issued invoice. Amounts are USD; `total` is charged (positive) or credited (negative)."""

    PAID, OPEN, FAILED, CREDITED, VOID = "paid", "open", "failed", "credited", "void"
    STATUS_CHOICES = [(PAID, "Paid"), (OPEN, "Open"), (FAILED, "Failed"), (CREDITED, "Credited"), (VOID, "Void")]
    PURCHASE, RENEWAL, TOP_UP, CREDIT = "purchase", "renewal", "top_up", "credit"
    KIND_CHOICES = [(PURCHASE, "License purchase"), (RENEWAL, "Renewal"), (TOP_UP, "Token top-up"),
                    (CREDIT, "Credit")]

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=20, unique=True)
    year = models.PositiveSmallIntegerField()
    sequence = models.PositiveIntegerField()
    kind = models.CharField(max_length=10, choices=KIND_CHOICES)
    issued_on = models.DateField()
    description = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES)
    subtotal = models.DecimalField(max_digits=12, decimal_places=2)
    discount_total = models.DecimalField(max_digits=12, decimal_places=2)
    credit_applied = models.DecimalField(max_digits=12, decimal_places=2)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    charge = models.OneToOneField("payments.Charge", on_delete=models.PROTECT, null=True, blank=True,
                                  related_name="invoice")
    refers_to = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
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
        constraints = [models.UniqueConstraint(fields=["year", "sequence"], name="gap_free_per_year")]
        indexes = [models.Index(fields=["account", "-issued_on"])]

    def __str__(self) -> str:
        return self.number

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableError("issued invoices never change; issue a credit invoice instead")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableError("issued invoices are never deleted")

    @property
    def filename(self) -> str:
        return f"{self.number}.pdf"


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
