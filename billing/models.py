"""What the billing run keeps: one renewal per account and billing date, and the notices it sent."""

from django.db import models

from pictor_billing import clock


class Renewal(models.Model):
    """One account's renewal for one billing date, recorded once (the unique constraint): however many
    times the run, its workers or a test clock reach that date, it is billed once.

    It carries the renewal's dunning: a failed charge is retried on F+1, F+3 and F+5 (F the day of
    the first attempt); after the last failure the invoice fails and its licenses expire.
    """

    ISSUED, PAID, PAST_DUE, FAILED, NOTHING = "issued", "paid", "past_due", "failed", "nothing"
    STATUS_CHOICES = [(ISSUED, "Issued, charging"), (PAID, "Paid"), (PAST_DUE, "Past due"),
                      (FAILED, "Failed: licenses expired"), (NOTHING, "Nothing renewed (cancellations ended)")]

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="renewals")
    billing_date = models.DateField()
    invoice = models.OneToOneField("invoices.Invoice", on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="renewal")
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default=ISSUED)
    first_failed_on = models.DateField(null=True, blank=True, help_text="F: the day of the first failed attempt.")
    next_retry_on = models.DateField(null=True, blank=True)
    failed_attempts = models.PositiveSmallIntegerField(default=0)
    # The newest charge attempt whose answer moved this renewal: each answer moves it once.
    settled_attempt_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-billing_date", "-id"]
        constraints = [models.UniqueConstraint(fields=["account", "billing_date"],
                                               name="one_renewal_per_account_and_date")]
        indexes = [models.Index(fields=["status", "next_retry_on"])]

    def __str__(self) -> str:
        return f"{self.account_id} on {self.billing_date}: {self.status}"


class BillingNotice(models.Model):
    """An email the billing run sent, so each is sent once (a reminder, a card-expiry notice…)."""

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="billing_notices")
    kind = models.CharField(max_length=30)
    key = models.CharField(max_length=100, help_text="What it was about, e.g. the renewal date.")
    sent_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "kind", "key"], name="one_notice_each")]

    def __str__(self) -> str:
        return f"{self.kind} {self.key}"


class ProcessorEvent(models.Model):
    """One event the processor sent to the webhook (Stripe's `evt_…`), stored once by its id.

    A delivery Stripe repeats (a replay) finds its row and changes nothing. `handled_at` is set once
    it has been acted on; a row left without it (the handling failed) is handled again by the next
    delivery. A dispute flags the invoice it is about for support here (`needs_support`), so admin
    lists them, rather than on the invoice itself.
    """

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=255, blank=True, help_text="The id of the event's data.object.")
    created = models.DateTimeField(null=True, blank=True, help_text="When the processor created the event.")
    livemode = models.BooleanField(default=False)
    payload = models.JSONField(default=dict)
    # Real time (when we got it), whatever an account's clock says.
    received_at = models.DateTimeField(default=clock.now)
    handled_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=300, blank=True, help_text="What handling it did, in plain words.")
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, null=True, blank=True,
                                related_name="processor_events")
    invoice = models.ForeignKey("invoices.Invoice", on_delete=models.PROTECT, null=True, blank=True,
                                related_name="processor_events")
    needs_support = models.BooleanField(default=False, help_text="Flagged for support (a dispute was opened).")

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["object_id", "type"]), models.Index(fields=["needs_support", "received_at"])]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
