"""Saved cards, payment attempts (every call that moves money at the processor), and the account's USD
credit balance."""

import datetime
from decimal import Decimal

from django.db import models
from django.db.models import Sum

from pictor_billing import clock
from pictor_billing.money import ZERO


class SavedCardManager(models.Manager):
    """Cards still saved: a removed card keeps its row (attempts name the card they charged) but is gone."""

    def get_queryset(self):
        return super().get_queryset().filter(removed_at__isnull=True)


class ProcessorCustomer(models.Model):
    """The processor's customer for one account (Stripe: created with its first card)."""

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="processor_customers")
    gateway = models.CharField(max_length=20)
    customer_ref = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "gateway"], name="one_customer_per_gateway")]

    def __str__(self) -> str:
        return f"{self.gateway} customer {self.customer_ref}"


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
    removed_at = models.DateTimeField(null=True, blank=True, help_text="Removed by the owner; kept for the record.")

    all_objects = models.Manager()
    objects = SavedCardManager()

    class Meta:
        ordering = ["-is_default", "-created_at"]
        default_manager_name = "objects"
        base_manager_name = "all_objects"
        constraints = [
            models.UniqueConstraint(fields=["account"], condition=models.Q(is_default=True),
                                    name="one_default_card_per_account"),
            models.CheckConstraint(condition=~models.Q(is_default=True, removed_at__isnull=False),
                                   name="removed_card_is_never_default"),
        ]

    def __str__(self) -> str:
        return f"{self.brand} •••• {self.last4}"

    @property
    def label(self) -> str:
        """How the Billing area names the card: "Visa ending 4242"."""
        return f"{self.brand} ending {self.last4}"

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


class PaymentAttemptQuerySet(models.QuerySet):
    def aggregate_amount(self) -> Decimal:
        return self.aggregate(total=Sum("amount"))["total"] or ZERO


class PaymentAttempt(models.Model):
    """One call to move money at the processor: recorded before the call, settled after it.

    Kept for ever, read-only in admin. The idempotency key is deterministic (this purchase form's
    n-th attempt, this invoice's n-th attempt), so a retry after a crash or timeout sends the same
    key and can never charge twice. `order` holds what the settle step records once the money is
    authorized (the purchase or top-up as quoted), so the reconciliation job can finish it.
    """

    PENDING, REQUIRES_ACTION, AUTHORIZED, SUCCEEDED = "pending", "requires_action", "authorized", "succeeded"
    FAILED, CANCELLED, REFUNDED, UNKNOWN = "failed", "cancelled", "refunded", "unknown"
    STATUS_CHOICES = [
        (PENDING, "Pending"), (REQUIRES_ACTION, "Requires action"), (AUTHORIZED, "Authorized, not captured"),
        (SUCCEEDED, "Succeeded"), (FAILED, "Failed"), (CANCELLED, "Cancelled (authorization released)"),
        (REFUNDED, "Refunded"), (UNKNOWN, "Unknown (no answer from the processor)"),
    ]
    # Money may be moving: the processor has it, or may have it, and it is not settled yet.
    IN_FLIGHT = (PENDING, REQUIRES_ACTION, AUTHORIZED, UNKNOWN)
    AUTHORIZE, CHARGE, REFUND = "authorize", "charge", "refund"
    KIND_CHOICES = [(AUTHORIZE, "Authorize, then capture"), (CHARGE, "Charge"), (REFUND, "Refund")]
    PURCHASE, TOP_UP, AUTO_TOP_UP, RENEWAL, CHANGE = "purchase", "top_up", "auto_top_up", "renewal", "change"
    PURPOSE_CHOICES = [(PURCHASE, "License purchase"), (TOP_UP, "Token top-up"), (AUTO_TOP_UP, "Auto top-up"),
                       (RENEWAL, "Renewal"), (CHANGE, "Plan change")]

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="payment_attempts")
    card = models.ForeignKey(Card, on_delete=models.PROTECT, null=True, blank=True, related_name="attempts")
    invoice = models.ForeignKey("invoices.Invoice", on_delete=models.PROTECT, null=True, blank=True,
                                related_name="payment_attempts", help_text="The invoice this attempt pays.")
    refund_of = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="refunds")
    purpose = models.CharField(max_length=20, choices=PURPOSE_CHOICES)
    kind = models.CharField(max_length=10, choices=KIND_CHOICES)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    description = models.CharField(max_length=200)
    off_session = models.BooleanField(default=False, help_text="Made without the cardholder present.")
    idempotency_key = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=20, choices=STATUS_CHOICES, default=PENDING)
    gateway = models.CharField(max_length=20)
    processor_ref = models.CharField(max_length=255, blank=True, help_text="The processor's id for this payment.")
    processor_answer = models.JSONField(default=dict, blank=True, help_text="What the processor last said.")
    failure_reason = models.CharField(max_length=300, blank=True, help_text="Plain words, as shown to the owner.")
    order = models.JSONField(default=dict, blank=True, help_text="What is recorded once the money is authorized.")
    order_recorded_at = models.DateTimeField(null=True, blank=True)
    # When the call was handed to the processor (real time): a renewal charge waits in the queue
    # unsent, and reconciliation leaves what was never sent to the charge step.
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    # Real time, not the account's clock: reconciliation looks for attempts left alone too long.
    updated_at = models.DateTimeField(auto_now=True)

    objects = PaymentAttemptQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "updated_at"]), models.Index(fields=["account", "purpose"])]
        constraints = [
            # At most one attempt per invoice in flight: a retry and Pay now can never both charge it.
            models.UniqueConstraint(fields=["invoice"],
                                    condition=models.Q(status__in=["pending", "requires_action", "authorized",
                                                                   "unknown"]),
                                    name="one_attempt_in_flight_per_invoice"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="attempt_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} ${self.amount}: {self.status}"

    @property
    def in_flight(self) -> bool:
        return self.status in self.IN_FLIGHT


class CreditEntryQuerySet(models.QuerySet):
    def balance(self) -> Decimal:
        return self.aggregate(total=Sum("amount"))["total"] or ZERO


class CreditEntry(models.Model):
    """One movement of the account's USD credit balance; append-only, the balance is the sum."""

    VOLUME_ADJUSTMENT, APPLIED, ADMIN_CREDIT, UPGRADE_CREDIT = "volume_adjustment", "applied", "admin_credit", "upgrade"
    RETURNED = "returned"
    KIND_CHOICES = [
        (RETURNED, "Credit returned by a failed invoice"),
        (VOLUME_ADJUSTMENT, "Volume discount adjustment"),
        (APPLIED, "Applied to a charge"),
        (ADMIN_CREDIT, "Credit issued by an admin"),
        (UPGRADE_CREDIT, "Credit for cancelled license"),
    ]
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="credit_entries")
    kind = models.CharField(max_length=20, choices=KIND_CHOICES)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    invoice = models.ForeignKey("invoices.Invoice", on_delete=models.PROTECT, null=True, blank=True,
                                related_name="credit_entries")
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey("accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=clock.now)

    objects = CreditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "credit entries"

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.amount}"
