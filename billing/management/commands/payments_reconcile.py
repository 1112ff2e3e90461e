"""manage.py payments_reconcile: settle payment attempts a crash, timeout or closed browser left behind."""

import datetime

from django.core.management.base import BaseCommand

from billing.reconcile import payments_reconcile


class Command(BaseCommand):
    help = ("Ask the processor about payment attempts left pending or unknown, then complete what was paid "
            "or release/refund it. Safe to run any time, and on several machines.")

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, default=None, metavar="SECONDS",
                            help="Only attempts left alone this long (default: RECONCILE_AFTER_SECONDS, 120).")

    def handle(self, *args, older_than=None, **options):
        outcomes = payments_reconcile(
            older_than=None if older_than is None else datetime.timedelta(seconds=older_than))
        if not outcomes:
            self.stdout.write("Nothing to reconcile.")
            return
        for status, count in sorted(outcomes.items()):
            self.stdout.write(f"{count} attempt{'s' if count != 1 else ''} {status}")
