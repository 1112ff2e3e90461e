from django.apps import AppConfig


class LicensesConfig(AppConfig):
    name = "licenses"

    def ready(self):
        from licenses.catalogue import connect_signals

        connect_signals()
