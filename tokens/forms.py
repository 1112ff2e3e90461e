"""Token forms: Top Up, the activity filters, the event estimator, the owner's settings, admin adjustments.

Prices never come from a form: the estimator's mix and every price are computed by the server.
"""

import datetime

from django import forms

from accounts.models import Account
from pictor_billing import clock
from tokens.models import OUTPUT_TYPES, OutputRate, TokenEntry, TokenPackage


class TopUpForm(forms.Form):
    package = forms.ModelChoiceField(
        label="Package", queryset=TokenPackage.objects.filter(is_active=True, price__gt=0, tokens__gt=0),
        widget=forms.RadioSelect,
        empty_label=None, error_messages={"invalid_choice": "Choose one of the packages on offer."},
    )
    token = forms.CharField(widget=forms.HiddenInput, required=False)


ALLOWED_FIELDS = {"csrfmiddlewaretoken", "package", "token", "next", "quote", "preview"}


class ActivityFilterForm(forms.Form):
    """The ledger filters, read from the query string."""

    kind = forms.ChoiceField(label="Kind", required=False, choices=[("", "All kinds"), *TokenEntry.KIND_CHOICES],
                             error_messages={"invalid_choice": "Unknown kind “%(value)s”: choose one from the list."})
    event = forms.CharField(label="Event", required=False, max_length=100,
                            error_messages={"max_length": "An event id has at most 100 characters."})


MAX_GUESTS, MAX_PER_GUEST = 10_000, 50


def per_guest_field_name(output_type: str) -> str:
    return f"per_guest_{output_type}"


class EstimateForm(forms.Form):
    """Expected guests and outputs per guest for each output type; a blank output count means none."""

    guests = forms.IntegerField(
        label="Expected guests", min_value=1, max_value=MAX_GUESTS,
        error_messages={"required": "Enter the number of guests you expect.",
                        "invalid": "Guests must be a whole number.",
                        "min_value": f"Guests must be from 1 to {MAX_GUESTS:,}.",
                        "max_value": f"Guests must be from 1 to {MAX_GUESTS:,}."})
    token = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for output_type, label in OUTPUT_TYPES:
            bounds = f"{label} per guest must be from 0 to {MAX_PER_GUEST}."
            self.fields[per_guest_field_name(output_type)] = forms.IntegerField(
                label=f"{label} per guest", required=False, min_value=0, max_value=MAX_PER_GUEST,
                error_messages={"invalid": f"{label} per guest must be a whole number.",
                                "min_value": bounds, "max_value": bounds})

    def per_guest_fields(self):
        """(output type, bound field) pairs, in the order of OUTPUT_TYPES."""
        return [(output_type, self[per_guest_field_name(output_type)]) for output_type, _ in OUTPUT_TYPES]

    @property
    def outputs_per_guest(self) -> dict[str, int]:
        return {output_type: self.cleaned_data.get(per_guest_field_name(output_type)) or 0
                for output_type, _ in OUTPUT_TYPES}


ESTIMATE_FIELDS = ({"csrfmiddlewaretoken", "guests", "token", "preview", "next", "quote"}
                   | {per_guest_field_name(output_type) for output_type, _ in OUTPUT_TYPES})


class TokenSettingsForm(forms.Form):
    """Low-balance alert and auto top-up, as the owner sets them on the Token activity page."""

    low_balance_threshold = forms.IntegerField(
        label="Low-balance alert below", min_value=0, max_value=1_000_000,
        help_text="We flag the balance and email you once each time it drops below this many tokens.")
    auto_top_up = forms.BooleanField(label="Auto top-up", required=False)
    auto_top_up_threshold = forms.IntegerField(
        label="When usage takes the balance below", min_value=1, max_value=1_000_000)
    auto_top_up_package = forms.ModelChoiceField(
        label="Buy this package", required=False,
        queryset=TokenPackage.objects.filter(is_active=True, price__gt=0, tokens__gt=0),
        empty_label="Choose a package",
        error_messages={"invalid_choice": "Choose one of the packages on offer."})
    auto_top_up_monthly_limit = forms.IntegerField(
        label="At most this many times a calendar month", min_value=1, max_value=31,
        error_messages={"min_value": "Choose from 1 to 31 times a month.",
                        "max_value": "Choose from 1 to 31 times a month."})

    def clean(self):
        data = super().clean()
        if data.get("auto_top_up") and not data.get("auto_top_up_package"):
            self.add_error("auto_top_up_package", "Choose the package auto top-up buys.")
        return data


SETTINGS_FIELDS = {"csrfmiddlewaretoken", *TokenSettingsForm.base_fields}


class TokenAdjustForm(forms.Form):
    """An admin's grant or deduction of tokens, always with a reason."""

    account = forms.ModelChoiceField(queryset=Account.objects.order_by("name"))
    amount = forms.IntegerField(
        min_value=-1_000_000, max_value=1_000_000,
        help_text="Positive to grant tokens, negative to deduct them. The balance can never go below zero.")
    reason = forms.CharField(max_length=200, widget=forms.TextInput(attrs={"size": 60}),
                             help_text="Shown to the customer in their token activity.",
                             error_messages={"required": "Give a reason: it is recorded with the adjustment."})

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError("Enter a number of tokens other than zero.")
        return amount


class OutputRateForm(forms.ModelForm):
    """A new rate starts now or later: usage already charged keeps the rate it was charged at."""

    # The form opens with "now"; saving takes a moment, so a start up to this far back means "now".
    GRACE = datetime.timedelta(minutes=15)

    class Meta:
        model = OutputRate
        fields = ["output_type", "tokens", "effective_from"]
        help_texts = {"effective_from": "Now or later. Usage before this moment keeps the rate it was charged at."}

    def clean_effective_from(self):
        value = self.cleaned_data["effective_from"]
        now = clock.now()
        if value < now - self.GRACE:
            raise forms.ValidationError("A rate applies to later usage only: choose a moment from now on.")
        return max(value, now)
