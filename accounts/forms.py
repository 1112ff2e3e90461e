"""Sign-up: company name, email and password."""

from django import forms
from django.contrib.auth import password_validation

from accounts.models import User


class SignupForm(forms.Form):
    EMAIL_TAKEN = "An account with this email already exists. Log in instead."

    company_name = forms.CharField(label="Company name", max_length=200)
    email = forms.EmailField(label="Email", max_length=254)
    password = forms.CharField(label="Password", strip=False, widget=forms.PasswordInput(
        attrs={"autocomplete": "new-password"}), help_text=password_validation.password_validators_help_text_html())

    def clean_email(self):
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(self.EMAIL_TAKEN)
        return email

    def clean(self):
        data = super().clean()
        if data.get("password"):
            try:
                password_validation.validate_password(data["password"], User(email=data.get("email", "")))
            except forms.ValidationError as error:
                self.add_error("password", error)
        return data
