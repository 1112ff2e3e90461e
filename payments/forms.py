"""Card entry (sandbox) and billing details forms."""

import datetime

from django import forms

from accounts.models import Account
from accounts.services import BILLING_DETAIL_FIELDS


class UnfilledTextInput(forms.TextInput):
    """A text input that never writes the submitted value back into the page."""

    def format_value(self, value):
        return None


class CardForm(forms.Form):
    """Card details for the sandbox processor; never re-rendered, never stored, never logged."""

    number = forms.CharField(label="Card number", max_length=23, widget=UnfilledTextInput(attrs={
        "autocomplete": "cc-number", "inputmode": "numeric", "placeholder": "4242 4242 4242 4242"}))
    exp_month = forms.IntegerField(label="Expiry month", min_value=1, max_value=12, widget=forms.NumberInput(
        attrs={"autocomplete": "cc-exp-month", "placeholder": "MM"}))
    exp_year = forms.IntegerField(label="Expiry year", min_value=2000, max_value=2100, widget=forms.NumberInput(
        attrs={"autocomplete": "cc-exp-year", "placeholder": "YYYY"}))
    cvc = forms.CharField(label="Security code (CVC)", max_length=4, min_length=3, widget=forms.PasswordInput(
        attrs={"autocomplete": "cc-csc", "inputmode": "numeric"}), error_messages={
        "min_length": "The security code must be 3 or 4 digits.",
        "max_length": "The security code must be 3 or 4 digits."})

    def __init__(self, *args, today: datetime.date, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today  # the account's clock

    def clean(self):
        data = super().clean()
        month, year = data.get("exp_month"), data.get("exp_year")
        if month and year and (year, month) < (self.today.year, self.today.month):
            self.add_error("exp_month", "That card has expired.")
        return data


class BillingDetailsForm(forms.ModelForm):
    """The name and address printed on invoices issued from now on."""

    class Meta:
        model = Account
        fields = list(BILLING_DETAIL_FIELDS)
