from django.apps import AppConfig


class LicensesConfig(AppConfig):
    name = "licenses"
