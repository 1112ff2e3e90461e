"""The purchase form: period, tier, quantity and coupon; every price comes from the server."""

from django import forms

from pictor_billing import pricing

from .models import PERIOD_CHOICES, TIER_CHOICES

# Anything else posted (a price, a total, a discount) is refused, never read.
ALLOWED_FIELDS = {"csrfmiddlewaretoken", "period", "tier", "quantity", "coupon", "token", "preview", "quote"}
COUPON_MAX_LENGTH = 40


class PurchaseForm(forms.Form):
    period = forms.ChoiceField(label="Billing period", choices=PERIOD_CHOICES, widget=forms.RadioSelect,
                               initial=pricing.MONTHLY)
    tier = forms.ChoiceField(label="Tier", choices=TIER_CHOICES, widget=forms.RadioSelect, initial=pricing.PRO)
    quantity = forms.IntegerField(
        label="Quantity", min_value=pricing.MIN_QUANTITY, max_value=pricing.MAX_QUANTITY, initial=1,
        error_messages={"invalid": "Quantity must be a whole number from 1 to 100."},
    )
    coupon = forms.CharField(
        label="Coupon code", required=False, max_length=COUPON_MAX_LENGTH,
        error_messages={"max_length": f"A coupon code has at most {COUPON_MAX_LENGTH} characters."},
    )
    token = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["quantity"].error_messages["min_value"] = "Quantity must be a whole number from 1 to 100."
        self.fields["quantity"].error_messages["max_value"] = "Quantity must be a whole number from 1 to 100."
        self.fields["tier"].error_messages["invalid_choice"] = "Choose Basic, Pro or Premium."
        self.fields["period"].error_messages["invalid_choice"] = "Choose monthly or annual billing."
