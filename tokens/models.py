"""Token packages and the append-only token ledger (the balance is its sum)."""

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Sum


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
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="token_entries")
    kind = models.CharField(max_length=20, choices=KIND_CHOICES)
    amount = models.IntegerField(help_text="Tokens added (positive) or spent (negative).")
    invoice = models.ForeignKey("invoices.Invoice", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TokenEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "token ledger"
        constraints = [
            models.UniqueConstraint(fields=["account"], condition=models.Q(kind="signup_grant"),
                                    name="one_signup_grant_per_account"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.amount:+d}"


class TopUp(models.Model):
    """One completed package purchase; `token` makes a resubmitted form a no-op."""

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="top_ups")
    package = models.ForeignKey(TokenPackage, on_delete=models.PROTECT, related_name="+")
    tokens = models.PositiveIntegerField()
    token = models.CharField(max_length=64, unique=True)
    invoice = models.OneToOneField("invoices.Invoice", on_delete=models.PROTECT, related_name="top_up")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.tokens:,} tokens for {self.account}"
