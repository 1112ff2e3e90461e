"""Licenses, their price list and features, coupons, and completed purchases."""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Upper

from pictor_billing import clock, pricing

TIER_CHOICES = [(tier, pricing.TIER_LABELS[tier]) for tier in pricing.TIERS]
PERIOD_CHOICES = [(period, pricing.PERIOD_LABELS[period]) for period in pricing.PERIODS]


class PriceListEntry(models.Model):
    """A list price for one tier and period, in force from `effective_from` until the next entry."""

    tier = models.CharField(max_length=10, choices=TIER_CHOICES)
    period = models.CharField(max_length=10, choices=PERIOD_CHOICES)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))])
    effective_from = models.DateField()

    class Meta:
        ordering = ["tier", "period", "-effective_from"]
        verbose_name_plural = "price list"
        constraints = [
            models.UniqueConstraint(fields=["tier", "period", "effective_from"], name="one_price_per_day"),
        ]

    def __str__(self) -> str:
        return f"{self.get_tier_display()} {self.period}: ${self.unit_price} from {self.effective_from}"


class Feature(models.Model):
    """One row of the feature list shown on tier cards and the full feature page."""

    name = models.CharField(max_length=120)
    position = models.PositiveSmallIntegerField(default=0)
    in_basic = models.BooleanField(default=False)
    in_pro = models.BooleanField(default=False)
    in_premium = models.BooleanField(default=False)
    on_card = models.BooleanField("shown on the tier card", default=True)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name

    def in_tier(self, tier: str) -> bool:
        return getattr(self, f"in_{tier}")


class PriceListVersion(models.Model):
    """One row whose token changes with every change to the price list or the feature list.

    Workers cache the price list and the tier cards under (this token, the day); reading the
    token is part of a query each request makes anyway (licenses.services), so an admin's change
    is seen by the very next request on every worker. A random token, not a counter: a counter
    rolled back with a transaction would be reused for other data.
    """

    token = models.CharField(max_length=32)

    def __str__(self) -> str:
        return self.token


class Coupon(models.Model):
    """A percentage or fixed-amount discount on one purchase (docs/rules.md: Coupons)."""

    PERCENT, FIXED = pricing.PERCENT, pricing.FIXED
    code = models.CharField(max_length=40, unique=True, help_text="Case-insensitive; stored upper case.")
    kind = models.CharField(max_length=10, choices=[(PERCENT, "Percentage"), (FIXED, "Fixed amount (USD)")])
    value = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))],
                                help_text="1-100 for a percentage, USD for a fixed amount.")
    combines_with_volume = models.BooleanField("combines with volume discount", default=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    max_redemptions = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no limit.")
    once_per_account = models.BooleanField("one use per account", default=False)
    tiers = models.JSONField(default=list, blank=True, help_text="Empty: every tier.")
    periods = models.JSONField(default=list, blank=True, help_text="Empty: every period.")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["code"]
        constraints = [models.UniqueConstraint(Upper("code"), name="coupon_code_case_insensitive")]

    def __str__(self) -> str:
        return self.code

    def save(self, *args, **kwargs):
        self.code = normalize_code(self.code)
        super().save(*args, **kwargs)

    def clean(self):
        self.code = normalize_code(self.code)
        if self.kind == self.PERCENT and self.value is not None and not 1 <= self.value <= 100:
            raise ValidationError({"value": "A percentage must be from 1 to 100."})
        if self.starts_at and self.expires_at and self.expires_at <= self.starts_at:
            raise ValidationError({"expires_at": "The expiry must come after the start."})


def normalize_code(code: str) -> str:
    """Coupon codes are case-insensitive and ignore surrounding spaces."""
    return (code or "").strip().upper()


class Purchase(models.Model):
    """One completed license purchase; `token` makes a resubmitted form a no-op."""

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="purchases")
    user = models.ForeignKey("accounts.User", on_delete=models.SET_NULL, null=True, related_name="+")
    token = models.CharField(max_length=64, unique=True)
    tier = models.CharField(max_length=10, choices=TIER_CHOICES)
    period = models.CharField(max_length=10, choices=PERIOD_CHOICES)
    quantity = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(100)])
    coupon = models.ForeignKey(Coupon, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    total_due = models.DecimalField(max_digits=12, decimal_places=2)
    invoice = models.OneToOneField("invoices.Invoice", on_delete=models.PROTECT, related_name="purchase")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.get_tier_display()} {self.period} ({self.account})"


class PlanChange(models.Model):
    """One completed upgrade of one or more licenses (one invoice); `token` makes a resubmitted form a no-op."""

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="plan_changes")
    user = models.ForeignKey("accounts.User", on_delete=models.SET_NULL, null=True, related_name="+")
    token = models.CharField(max_length=64, unique=True)
    tier = models.CharField(max_length=10, choices=TIER_CHOICES)
    period = models.CharField(max_length=10, choices=PERIOD_CHOICES)
    licenses = models.ManyToManyField("License", related_name="plan_changes")
    total_due = models.DecimalField(max_digits=12, decimal_places=2)
    invoice = models.OneToOneField("invoices.Invoice", on_delete=models.PROTECT, related_name="plan_change")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Upgrade to {self.get_tier_display()} {self.period} ({self.account})"


class CouponRedemption(models.Model):
    """A coupon used by one completed purchase."""

    coupon = models.ForeignKey(Coupon, on_delete=models.PROTECT, related_name="redemptions")
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="coupon_redemptions")
    purchase = models.OneToOneField(Purchase, on_delete=models.PROTECT, related_name="redemption")
    created_at = models.DateTimeField(default=clock.now)

    def __str__(self) -> str:
        return f"{self.coupon_id} on purchase {self.purchase_id}"


class RenewalGroup(models.Model):
    """What renews together: the account's monthly anchor group, or the licenses of one annual purchase.

    `anchor_on` is the group's first date: a monthly group renews on its day of the month (the
    last day of a short month stands in for 29-31), an annual group on its anniversaries (bought
    Feb 29: Feb 28 in common years). A group with no license left ends; an account's monthly
    anchor goes with its monthly group.
    """

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="renewal_groups")
    period = models.CharField(max_length=10, choices=PERIOD_CHOICES)
    anchor_on = models.DateField(help_text="The group's first date: what its renewal dates count from.")
    ended_on = models.DateField(null=True, blank=True, help_text="No license left in it from this date.")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account"],
                                               condition=models.Q(period="monthly", ended_on__isnull=True),
                                               name="one_open_monthly_group_per_account")]

    def __str__(self) -> str:
        return f"{self.get_period_display()} group from {self.anchor_on}"


class LicenseQuerySet(models.QuerySet):
    def active(self):
        """Licenses that count as active: not expired, past due and cancelling ones included.

        A license stays active until a renewal outcome or its cancellation ends it (the billing
        run expires it): reaching its billing date before the run has reached it does not.
        """
        return self.exclude(status=License.EXPIRED)

    def renewing(self):
        """Active licenses that are not cancelled: what a renewal bills and its bracket counts."""
        return self.active().filter(cancel_at_period_end=False)


class License(models.Model):
    """One device seat: runs one live event at a time until it expires."""

    ACTIVE, PAST_DUE, EXPIRED = "active", "past_due", "expired"
    STATUS_CHOICES = [(ACTIVE, "Active"), (PAST_DUE, "Past due"), (EXPIRED, "Expired")]
    CANCELLING_LABEL = "Cancelling"  # what the tab calls an active license cancelled at its period's end

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="licenses")
    purchase = models.ForeignKey(Purchase, on_delete=models.PROTECT, related_name="licenses")
    group = models.ForeignKey(RenewalGroup, on_delete=models.PROTECT, related_name="licenses")
    tier = models.CharField(max_length=10, choices=TIER_CHOICES)
    period = models.CharField(max_length=10, choices=PERIOD_CHOICES)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default=ACTIVE)
    cancel_at_period_end = models.BooleanField(default=False)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    purchased_on = models.DateField()
    # The current paid period: for a monthly license bought mid-cycle it starts
    # at the cycle's anchor date, so "unused share" uses the whole cycle.
    period_start = models.DateField()
    period_end = models.DateField(help_text="The next billing date: renews or ends on.")
    list_price = models.DecimalField(max_digits=10, decimal_places=2, help_text="List price when last charged.")
    discount_rate = models.DecimalField(max_digits=4, decimal_places=2, default=Decimal("0.00"),
                                        help_text="Volume discount rate it was last charged at.")
    ended_on = models.DateField(null=True, blank=True, help_text="Expired: paid until this date.")
    # A downgrade (or annual -> monthly) waits for the billing date: it renews at these, until undone.
    next_tier = models.CharField(max_length=10, choices=TIER_CHOICES, blank=True, default="",
                                 help_text="Renews at this tier (a scheduled downgrade).")
    next_period = models.CharField(max_length=10, choices=PERIOD_CHOICES, blank=True, default="",
                                   help_text="Renews at this period (a scheduled downgrade).")
    created_at = models.DateTimeField(default=clock.now)

    objects = LicenseQuerySet.as_manager()

    class Meta:
        ordering = ["-purchased_on", "-id"]
        indexes = [models.Index(fields=["account", "status"]), models.Index(fields=["status", "period_end"]),
                   # The Licenses tab's page: an account's licenses in this ordering, read 25 at a time
                   # without sorting them all.
                   models.Index(fields=["account", "-purchased_on", "-id"], name="license_account_newest")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_tier_display()} {self.period}"

    @property
    def has_ended(self) -> bool:
        return self.status == self.EXPIRED

    @property
    def change_scheduled(self) -> bool:
        return bool(self.next_tier)

    @property
    def renews_as(self) -> tuple[str, str]:
        """The tier and period it renews at: a scheduled change, or what it is now."""
        return (self.next_tier, self.next_period) if self.next_tier else (self.tier, self.period)

    @property
    def renews_as_label(self) -> str:
        tier, period = self.renews_as
        return f"{pricing.TIER_LABELS[tier]} {period}"

    @property
    def status_label(self) -> str:
        """Active, Cancelling, Past due or Expired, as the Licenses tab shows it."""
        if self.status == self.ACTIVE and self.cancel_at_period_end:
            return self.CANCELLING_LABEL
        return dict(self.STATUS_CHOICES)[self.status]  # get_status_display, without its per-call hashing


class LicenseTerm(models.Model):
    """One paid period of one license: what it was, at what price and rate, and what was paid for it.

    `paid` is this license's share of what its invoice charged for it (after pro-rata, the volume
    discount and any coupon; credit used counts as paid): the ceiling of an upgrade's credit.
    """

    PURCHASE, RENEWAL, CHANGE = "purchase", "renewal", "change"
    license = models.ForeignKey(License, on_delete=models.PROTECT, related_name="terms")
    kind = models.CharField(max_length=10, choices=[(PURCHASE, "Purchase"), (RENEWAL, "Renewal"),
                                                     (CHANGE, "Plan change")])
    starts_on = models.DateField()
    ends_on = models.DateField()
    tier = models.CharField(max_length=10, choices=TIER_CHOICES)
    period = models.CharField(max_length=10, choices=PERIOD_CHOICES)
    list_price = models.DecimalField(max_digits=10, decimal_places=2)
    rate = models.DecimalField(max_digits=4, decimal_places=2)
    paid = models.DecimalField(max_digits=10, decimal_places=2)
    invoice = models.ForeignKey("invoices.Invoice", on_delete=models.PROTECT, null=True, blank=True,
                                related_name="license_terms")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["license", "starts_on", "id"]

    def __str__(self) -> str:
        return f"#{self.license_id} {self.starts_on} – {self.ends_on}: ${self.paid}"


class EventLease(models.Model):
    """A license lent to one live event; one license runs one live event at a time."""

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="event_leases")
    license = models.ForeignKey(License, on_delete=models.PROTECT, related_name="leases")
    event_id = models.CharField(max_length=100)
    event_tier = models.CharField(max_length=10, choices=TIER_CHOICES)
    device_id = models.CharField(max_length=100)
    started_at = models.DateTimeField(default=clock.now)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # The database itself refuses a second live event on a license, or a second lease for an event.
            models.UniqueConstraint(fields=["license"], condition=models.Q(stopped_at__isnull=True),
                                    name="one_live_event_per_license"),
            models.UniqueConstraint(fields=["account", "event_id"], condition=models.Q(stopped_at__isnull=True),
                                    name="one_live_lease_per_event"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} on license #{self.license_id}"
