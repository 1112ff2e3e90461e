"""The one pricing service: pure functions from plain values to frozen quotes.

It imports no app and no ORM. The purchase modal's live Order Summary, the purchase itself and its
invoice take their figures from `quote_purchase`; token top-ups from `quote_top_up_mix`; renewals
from `quote_renewal`; plan changes from `quote_change` — each called with the same inputs for the
preview and the charge, so what is shown is what is charged. Every step rounds once, half-up, to the
cent (docs/rules.md). Quote lines carry signed amounts (discounts and credits negative) that sum to
the total due.

Modules: base (tiers, brackets, lines, fingerprint), calendar (anchors, cycles, anniversaries),
purchase, top_up (packages and the cheapest mix), renewal, change.
"""

from pictor_billing.pricing.base import (
    ANNUAL,
    BASIC,
    FIXED,
    MAX_QUANTITY,
    MIN_QUANTITY,
    MONTHLY,
    PERCENT,
    PERIOD_LABELS,
    PERIODS,
    PREMIUM,
    PRO,
    TIER_LABELS,
    TIERS,
    VOLUME_BRACKETS,
    PricingError,
    QuoteLine,
    next_bracket,
    percent,
    quote_fingerprint,
    volume_rate,
)
from pictor_billing.pricing.calendar import add_years, anchor_date, billing_cycle, day_words, shift_month
from pictor_billing.pricing.change import (
    DOWN,
    SAME,
    UP,
    ChangedLicense,
    ChangeQuote,
    ChangingLicense,
    change_direction,
    quote_change,
    unused_credit,
)
from pictor_billing.pricing.purchase import (
    ActiveLicense,
    CouponTerms,
    LicenseAdjustment,
    Quote,
    coupon_problem,
    quote_purchase,
)
from pictor_billing.pricing.renewal import (
    RenewalQuote,
    RenewedLicense,
    RenewingLicense,
    next_annual_date,
    next_monthly_date,
    quote_renewal,
)
from pictor_billing.pricing.top_up import (
    PackageOffer,
    TopUpQuote,
    cheapest_package_mix,
    quote_top_up,
    quote_top_up_mix,
)

__all__ = [
    "ANNUAL", "BASIC", "FIXED", "MAX_QUANTITY", "MIN_QUANTITY", "MONTHLY", "PERCENT", "PERIOD_LABELS", "PERIODS",
    "PREMIUM", "PRO", "TIER_LABELS", "TIERS", "VOLUME_BRACKETS", "ActiveLicense", "CouponTerms", "LicenseAdjustment",
    "PackageOffer", "PricingError", "Quote", "QuoteLine", "TopUpQuote", "add_years", "anchor_date", "billing_cycle",
    "cheapest_package_mix", "coupon_problem", "next_bracket", "percent", "quote_fingerprint", "quote_purchase",
    "quote_top_up", "quote_top_up_mix", "shift_month", "volume_rate", "RenewalQuote", "RenewedLicense",
    "RenewingLicense", "next_annual_date", "next_monthly_date", "quote_renewal", "ChangeQuote", "ChangedLicense",
    "ChangingLicense", "change_direction", "quote_change", "DOWN", "SAME", "UP",
    "unused_credit", "day_words",
]
