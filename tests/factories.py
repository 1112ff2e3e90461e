"""factory_boy factories: accounts with users, cards, licenses, coupons, and the seeded price list."""

import datetime
from decimal import Decimal

import factory
from django.utils import timezone

from accounts.models import Account, User
from licenses.models import Coupon, Feature, PriceListEntry
from tokens.models import TokenPackage

PASSWORD = "correct horse battery staple"
PRICES = {("basic", "monthly"): "49.00", ("basic", "annual"): "490.00", ("pro", "monthly"): "99.00",
          ("pro", "annual"): "990.00", ("premium", "monthly"): "149.00", ("premium", "annual"): "1490.00"}
PACKAGES = [("Starter", 100, "10.00"), ("Standard", 500, "45.00"), ("Large", 1000, "80.00"),
            ("Event Pro", 5000, "350.00")]


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Company {n}")
    address_line1 = "1 Main Street"
    city = "Springfield"
    postal_code = "12345"
    country = "United States"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    account = factory.SubFactory(AccountFactory)
    # Verified, as a user who has been using Billing is; tests/accounts/test_signup.py starts from sign-up.
    email_verified_at = factory.LazyFunction(timezone.now)
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class CouponFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Coupon

    code = factory.Sequence(lambda n: f"CODE{n}")
    kind = Coupon.PERCENT
    value = Decimal("10")
    combines_with_volume = True


def price_list_seed(effective_from=datetime.date(2020, 1, 1)) -> None:
    """The price list of docs/rules.md, in force since 2020."""
    for (tier, period), price in PRICES.items():
        PriceListEntry.objects.get_or_create(tier=tier, period=period, effective_from=effective_from,
                                             defaults={"unit_price": Decimal(price)})
    if not Feature.objects.exists():
        Feature.objects.create(name="Photo capture, GIF and boomerang", in_basic=True, in_pro=True, in_premium=True)
        Feature.objects.create(name="Video capture", in_premium=True)


def packages_seed() -> list[TokenPackage]:
    return [TokenPackage.objects.get_or_create(name=name, defaults={"tokens": tokens, "price": Decimal(price),
                                                                    "position": i})[0]
            for i, (name, tokens, price) in enumerate(PACKAGES)]
