"""The Top Up form: which package; the price always comes from the server."""

from django import forms

from tokens.models import TokenPackage


class TopUpForm(forms.Form):
    package = forms.ModelChoiceField(
        label="Package", queryset=TokenPackage.objects.filter(is_active=True, price__gt=0, tokens__gt=0),
        widget=forms.RadioSelect,
        empty_label=None, error_messages={"invalid_choice": "Choose one of the packages on offer."},
    )
    token = forms.CharField(widget=forms.HiddenInput, required=False)


ALLOWED_FIELDS = {"csrfmiddlewaretoken", "package", "token", "next"}
