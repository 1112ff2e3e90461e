"""The purchase and plan change forms: what is chosen, never a price (every price comes from the server)."""

from django import forms

from pictor_billing import pricing

from .models import PERIOD_CHOICES, TIER_CHOICES, License

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


# The plan change form: which licenses, to what. Anything else posted is refused, never read.
CHANGE_FIELDS = {"csrfmiddlewaretoken", "license", "tier", "period", "token", "preview", "quote"}
MAX_CHANGED = 100


class ChangeForm(forms.Form):
    """Licenses of the account (hidden: chosen on the Licenses tab) and the tier and period they move to."""

    license = forms.ModelMultipleChoiceField(queryset=None, widget=forms.MultipleHiddenInput, error_messages={
        "required": "Choose one or more licenses to change.",
        "invalid_choice": "Choose licenses of yours that have not expired.",
        "invalid_pk_value": "Choose licenses of yours that have not expired."})
    tier = forms.ChoiceField(label="Tier", choices=TIER_CHOICES, widget=forms.RadioSelect)
    period = forms.ChoiceField(label="Billing period", choices=PERIOD_CHOICES, widget=forms.RadioSelect)
    token = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, account, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["license"].queryset = License.objects.filter(account=account).active()
        self.fields["tier"].error_messages["invalid_choice"] = "Choose Basic, Pro or Premium."
        self.fields["period"].error_messages["invalid_choice"] = "Choose monthly or annual billing."

    def clean_license(self):
        licenses = self.cleaned_data["license"]
        if len(licenses) > MAX_CHANGED:
            raise forms.ValidationError(f"Change at most {MAX_CHANGED} licenses at once.")
        return licenses
