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
