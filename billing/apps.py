from django.apps import AppConfig


class BillingConfig(AppConfig):
    """The flows that tie accounts, invoices, payments, licenses and tokens together."""

    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"
