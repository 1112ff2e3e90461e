"""Token packages, output rates, the append-only token ledger (the balance is its sum), top-ups,
usage requests (for idempotency) and each account's low-balance and auto top-up settings."""

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Sum

from pictor_billing import clock


class TokenPackage(models.Model):
    """A top-up package (admin-editable); its price goes through the pricing service."""

    name = models.CharField(max_length=60)
    tokens = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    price = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))])
    position = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField("on sale", default=True)

    class Meta:
        ordering = ["position", "tokens"]

    def __str__(self) -> str:
        return f"{self.name} ({self.tokens:,} tokens, ${self.price})"


OUTPUT_TYPES = [
    ("photo", "Photo"),
    ("gif", "GIF / boomerang"),
    ("video_capture", "Video capture"),
    ("ai_image", "AI image"),
    ("ai_video", "AI video"),
]


class OutputRate(models.Model):
    """Tokens per output of one type, in force from `effective_from` until the next entry (later usage only)."""

    output_type = models.CharField(max_length=20, choices=OUTPUT_TYPES)
    tokens = models.PositiveIntegerField(help_text="Tokens per output.")
    effective_from = models.DateTimeField()

    class Meta:
        ordering = ["output_type", "-effective_from"]
        constraints = [models.UniqueConstraint(fields=["output_type", "effective_from"], name="one_rate_per_moment")]

    def __str__(self) -> str:
        return f"{self.get_output_type_display()}: {self.tokens} from {self.effective_from:%Y-%m-%d %H:%M}"


class TokenEntryQuerySet(models.QuerySet):
    def balance(self) -> int:
        return self.aggregate(total=Sum("amount"))["total"] or 0


class TokenEntry(models.Model):
    """One movement of tokens. Entries are only ever added."""

    SIGNUP_GRANT, TOP_UP, USAGE, ADMIN_ADJUSTMENT, AUTO_TOP_UP = (
        "signup_grant", "top_up", "usage", "admin_adjustment", "auto_top_up")
    KIND_CHOICES = [
        (SIGNUP_GRANT, "Signup grant"),
        (TOP_UP, "Top-up"),
        (USAGE, "Usage"),
        (ADMIN_ADJUSTMENT, "Admin adjustment"),
        (AUTO_TOP_UP, "Auto top-up"),
    ]
    # No index of its own: (account, -id) and (account, event_id) lead with it. With sequential scans off
    # (tokens/migrations/0007), a plain one would be one more wrong choice for the usage debit's cached
    # plan, as it was on UsageRequest: the newest entry is (account, -id)'s first row.
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="token_entries",
                                db_index=False)
    kind = models.CharField(max_length=20, choices=KIND_CHOICES)
    amount = models.IntegerField(help_text="Tokens added (positive) or spent (negative).")
    # The running balance after this entry, kept so the balance is one indexed
    # read; it always equals the sum of the account's entries up to this one.
    balance_after = models.IntegerField()
    invoice = models.ForeignKey("invoices.Invoice", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    output_type = models.CharField(max_length=20, choices=OUTPUT_TYPES, blank=True)
    quantity = models.PositiveIntegerField(null=True, blank=True)
    event_id = models.CharField(max_length=100, blank=True)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey("accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=clock.now)

    objects = TokenEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "token ledger"
        indexes = [models.Index(fields=["account", "-id"]), models.Index(fields=["account", "event_id"])]
        constraints = [
            models.UniqueConstraint(fields=["account"], condition=models.Q(kind="signup_grant"),
                                    name="one_signup_grant_per_account"),
            models.CheckConstraint(condition=models.Q(balance_after__gte=0), name="token_balance_never_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.amount:+d}"


class TopUp(models.Model):
    """One completed purchase of one or more packages; `token` makes a resubmitted form a no-op."""

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="top_ups")
    package = models.ForeignKey(TokenPackage, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                help_text="Empty when several packages were bought together.")
    automatic = models.BooleanField(default=False)
    tokens = models.PositiveIntegerField()
    token = models.CharField(max_length=64, unique=True)
    invoice = models.OneToOneField("invoices.Invoice", on_delete=models.PROTECT, related_name="top_up")
    created_at = models.DateTimeField(default=clock.now)

    def __str__(self) -> str:
        return f"{self.tokens:,} tokens for {self.account}"


class UsageRequest(models.Model):
    """The first answer to a usage request, kept so the same idempotency key never debits twice."""

    # No index of its own: the unique (account, idempotency_key) leads with it, and the usage debit's
    # cached plan once took this one and filtered the account's every request for the key.
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="+", db_index=False)
    idempotency_key = models.CharField(max_length=100)
    body_hash = models.CharField(max_length=64)
    response = models.JSONField()
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "idempotency_key"], name="one_usage_per_key")]

    def __str__(self) -> str:
        return self.idempotency_key


class TokenSettings(models.Model):
    """An account's low-balance alert and auto top-up choices."""

    account = models.OneToOneField("accounts.Account", on_delete=models.CASCADE, related_name="token_settings")
    low_balance_threshold = models.PositiveIntegerField(default=20)
    low_balance_alerted = models.BooleanField(default=False, help_text="An alert went out for the current dip.")
    auto_top_up = models.BooleanField("auto top-up", default=False)
    auto_top_up_threshold = models.PositiveIntegerField(default=50)
    auto_top_up_package = models.ForeignKey(TokenPackage, on_delete=models.PROTECT, null=True, blank=True,
                                            related_name="+")
    auto_top_up_monthly_limit = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1)], help_text="At most this many auto top-ups per calendar month.")
    auto_top_up_failure = models.CharField(max_length=200, blank=True,
                                           help_text="Why auto top-up was switched off, shown as a banner.")
    auto_top_up_pending_since = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text="A usage debit queued an auto top-up that is not bought yet (at most one at a time).")

    class Meta:
        verbose_name_plural = "token settings"

    def __str__(self) -> str:
        return f"Token settings of {self.account}"
