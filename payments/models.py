"""Saved cards, card charges, and the account's USD credit balance."""

import datetime
from decimal import Decimal

from django.db import models
from django.db.models import Sum

from pictor_billing import clock
from pictor_billing.money import ZERO


class Card(models.Model):
    """A saved card: only what the processor lets us keep (never the number or CVC)."""

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="cards")
    gateway = models.CharField(max_length=20)
    gateway_ref = models.CharField(max_length=255, help_text="The processor's id for this card.")
    brand = models.CharField(max_length=20)
    last4 = models.CharField(max_length=4)
    exp_month = models.PositiveSmallIntegerField()
    exp_year = models.PositiveSmallIntegerField()
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-is_default", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["account"], condition=models.Q(is_default=True),
                                    name="one_default_card_per_account"),
        ]

    def __str__(self) -> str:
        return f"{self.brand} •••• {self.last4}"

    def expires_on(self) -> datetime.date:
        """The last day the card can be charged."""
        if self.exp_month == 12:
            return datetime.date(self.exp_year, 12, 31)
        return datetime.date(self.exp_year, self.exp_month + 1, 1) - datetime.timedelta(days=1)

    def is_expired(self, today: datetime.date) -> bool:
        return self.expires_on() < today

    def expires_soon(self, today: datetime.date) -> bool:
        """Expires within the next 60 days (two monthly renewals away)."""
        return not self.is_expired(today) and self.expires_on() <= today + datetime.timedelta(days=60)


class Charge(models.Model):
    """A successful charge of a card (declines create nothing)."""

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="charges")
    card = models.ForeignKey(Card, on_delete=models.SET_NULL, null=True, related_name="charges")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    gateway_ref = models.CharField(max_length=255)
    idempotency_key = models.CharField(max_length=200, unique=True)
    description = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"${self.amount} on {self.card}"


class CreditEntryQuerySet(models.QuerySet):
    def balance(self) -> Decimal:
        return self.aggregate(total=Sum("amount"))["total"] or ZERO


class CreditEntry(models.Model):
    """One movement of the account's USD credit balance; append-only, the balance is the sum."""

    VOLUME_ADJUSTMENT, APPLIED, ADMIN_CREDIT, UPGRADE_CREDIT = "volume_adjustment", "applied", "admin_credit", "upgrade"
    KIND_CHOICES = [
        (VOLUME_ADJUSTMENT, "Volume discount adjustment"),
        (APPLIED, "Applied to a charge"),
        (ADMIN_CREDIT, "Credit issued by an admin"),
        (UPGRADE_CREDIT, "Credit for cancelled license"),
    ]
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="credit_entries")
    kind = models.CharField(max_length=20, choices=KIND_CHOICES)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    invoice = models.ForeignKey("invoices.Invoice", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey("accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=clock.now)

    objects = CreditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "credit entries"

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.amount}"
