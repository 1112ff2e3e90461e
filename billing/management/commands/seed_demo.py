"""Seed the price list, features, token packages, demo coupons and a demo owner. Safe to run again."""

import datetime
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Account, User
from billing.clocks import clock_attach, clocks_allowed
from billing.signup import account_signup, email_verify
from licenses.models import Coupon, Feature, PriceListEntry
from payments.models import Card
from payments.services import card_add
from pictor_billing import clock
from tokens.models import TokenPackage

DEMO_EMAIL = "demo@pictor.example"
DEMO_PASSWORD = "pictor-demo-2026"
# Staff (Django admin) and an owner whose account runs on a test clock, to try renewals and dunning.
ADMIN_EMAIL, ADMIN_PASSWORD = "admin@pictor.example", "pictor-admin-2026"
CLOCK_EMAIL, CLOCK_PASSWORD = "clock@pictor.example", "pictor-clock-2026"
PRICES = {("basic", "monthly"): "49.00", ("basic", "annual"): "490.00", ("pro", "monthly"): "99.00",
          ("pro", "annual"): "990.00", ("premium", "monthly"): "149.00", ("premium", "annual"): "1490.00"}
FEATURES = [  # name, basic, pro, premium, on the tier card
    ("Photo capture, GIF and boomerang", True, True, True, True),
    ("AI image generation (uses tokens)", True, True, True, True),
    ("Printing", True, True, True, False),
    ("iOS, Android and Mac/PC virtual booth", True, True, True, False),
    ("Custom AI prompts", False, True, True, True),
    ("Slideshow and sharing station", False, True, True, True),
    ("Video capture", False, False, True, True),
    ("AI video (uses tokens)", False, False, True, True),
    ("Pre-registration and QR check-in", False, False, True, False),
    ("Zapier integration", False, False, True, False),
]
PACKAGES = [("Starter", 100, "10.00"), ("Standard", 500, "45.00"), ("Large", 1000, "80.00"),
            ("Event Pro", 5000, "350.00")]


class Command(BaseCommand):
    help = "Seed demo data (prices, features, packages, coupons, demo owner). Idempotent."

    @transaction.atomic
    def handle(self, *args, **options):
        start = datetime.date(2026, 1, 1)
        for (tier, period), price in PRICES.items():
            PriceListEntry.objects.get_or_create(tier=tier, period=period, effective_from=start,
                                                 defaults={"unit_price": Decimal(price)})
        if not Feature.objects.exists():
            Feature.objects.bulk_create(
                Feature(name=name, position=i, in_basic=b, in_pro=p, in_premium=pr, on_card=card)
                for i, (name, b, p, pr, card) in enumerate(FEATURES)
            )
        for position, (name, tokens, price) in enumerate(PACKAGES):
            TokenPackage.objects.get_or_create(name=name, defaults={"tokens": tokens, "price": Decimal(price),
                                                                    "position": position})
        now = clock.now()
        Coupon.objects.get_or_create(code="WELCOME10", defaults={"kind": Coupon.PERCENT, "value": Decimal("10"),
                                                                 "combines_with_volume": True})
        Coupon.objects.get_or_create(code="FLAT50", defaults={"kind": Coupon.FIXED, "value": Decimal("50"),
                                                              "combines_with_volume": False})
        Coupon.objects.get_or_create(code="EXPIRED20", defaults={
            "kind": Coupon.PERCENT, "value": Decimal("20"), "combines_with_volume": True,
            "starts_at": now - datetime.timedelta(days=60), "expires_at": now - datetime.timedelta(days=30)})
        user = User.objects.filter(email=DEMO_EMAIL).first()
        if user is None:
            user = account_signup(company_name="Demo Events Ltd", email=DEMO_EMAIL, password=DEMO_PASSWORD)
            email_verify(user=user)  # as if the owner had opened the sign-up email: the 50 welcome tokens
            Account.objects.filter(pk=user.account_id).update(
                address_line1="12 Shutter Lane", city="Austin", postal_code="78701", country="United States")
        if not Card.objects.filter(account_id=user.account_id).exists():
            card_add(account=user.account, number="4242424242424242", exp_month=12, exp_year=now.year + 3, cvc="123")
        if not User.objects.filter(email=ADMIN_EMAIL).exists():
            User.objects.create_superuser(email=ADMIN_EMAIL, password=ADMIN_PASSWORD)
        logins = [f"  owner: {DEMO_EMAIL} / {DEMO_PASSWORD}",
                  f"  staff (Django admin at /admin/): {ADMIN_EMAIL} / {ADMIN_PASSWORD}"]
        if clocks_allowed():
            self._test_clock_owner(now)
            logins.append(f"  owner of a test-clock account (advance it in admin): {CLOCK_EMAIL} / {CLOCK_PASSWORD}")
        self.stdout.write(self.style.SUCCESS("Demo data ready. Log in at http://127.0.0.1:8000/login/ as"))
        self.stdout.write("\n".join(logins))
        # The finance area's login and demo books: the finance app's own command (finance sits above billing).
        from django.core.management import call_command

        call_command("finance_demo", stdout=self.stdout)

    @staticmethod
    def _test_clock_owner(now):
        if User.objects.filter(email=CLOCK_EMAIL).exists():
            return
        user = account_signup(company_name="Clockwork Test Events", email=CLOCK_EMAIL, password=CLOCK_PASSWORD)
        email_verify(user=user)
        account = clock_attach(account=user.account, start=now.replace(hour=9, minute=0, second=0, microsecond=0))
        card_add(account=account, number="4242424242424242", exp_month=12, exp_year=now.year + 3, cvc="123")
