"""Accounts: the company that pays, and the users who belong to it."""

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.db.models.functions import Lower

from pictor_billing.addresses import address_lines


class Account(models.Model):
    """A customer company. Its billing name and address are copied onto each invoice."""

    name = models.CharField("billing name", max_length=200)
    address_line1 = models.CharField("address line 1", max_length=200, blank=True)
    address_line2 = models.CharField("address line 2", max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=100, blank=True)
    vat_id = models.CharField("VAT id", max_length=40, blank=True)
    billing_email = models.EmailField(
        "billing email", blank=True,
        help_text="Invoices and billing emails go here; empty: to every user of the account.")
    # Day of month (1-31) every monthly license renews on; set by the first monthly purchase.
    monthly_anchor_day = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    # Read by pictor_billing.clock: empty, the account lives in real time; set (a test clock), its
    # clock stands at this moment and every date rule for this account follows it.
    clock_frozen_at = models.DateTimeField("clock stands at", null=True, blank=True, editable=False)
    # Once a test clock was attached, for ever: the daily billing run, finance and MRR leave it
    # out, and its invoices are numbered in a series of their own.
    is_test_account = models.BooleanField("test account", default=False, editable=False)
    test_clock_attached = models.BooleanField(default=False, editable=False,
                                              help_text="Its test clock can be advanced (detached: frozen).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def invoice_series(self) -> str:
        """The numbering series of its invoices: test accounts have their own (PB-TEST-…)."""
        return "TEST" if self.is_test_account else ""

    @property
    def address_lines(self) -> list[str]:
        """The postal address as printed on an invoice, in the seller's format (pictor_billing.addresses)."""
        return address_lines(line1=self.address_line1, line2=self.address_line2, city=self.city,
                             postal_code=self.postal_code, country=self.country)


class UserManager(BaseUserManager):
    """Users log in with their email address."""

    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        email = email.strip().lower()
        user = self.model(email=email, **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def get_by_natural_key(self, email):
        # Email addresses are matched case-insensitively at log in, as people type them.
        return self.get(email__iexact=email)

    def create_superuser(self, email, password=None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractUser):
    """A person who logs in; every Billing page shows only their account's data."""

    username = None
    email = models.EmailField("email", unique=True)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, null=True, blank=True, related_name="users")
    # Set when the user opens the link emailed at sign-up; the account's welcome tokens come then.
    email_verified_at = models.DateTimeField("email verified", null=True, blank=True, editable=False)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = []

    objects = UserManager()

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_case_insensitive")]

    def __str__(self) -> str:
        return self.email

    def save(self, *args, **kwargs):
        # One address, one user: stored lower-case, as log in matches it.
        self.email = (self.email or "").strip().lower()
        super().save(*args, **kwargs)


class ApiKey(models.Model):
    """A device API key: shown once when created, stored only as a SHA-256 hash."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, unique=True, help_text="The key's public start, to find it fast.")
    key_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
