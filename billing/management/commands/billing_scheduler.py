"""manage.py billing_scheduler: enqueue what is due, every 10 minutes (or once, from cron)."""

import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from billing.scheduler import schedule_pass


class Command(BaseCommand):
    help = ("Every --interval seconds, enqueue each account with something due (renewals, retries) and the "
            "charge step and reconciliation, for the db_worker processes. Safe to run on several machines. "
            "From cron: */10 * * * * manage.py billing_scheduler --once")

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one pass, then exit (for cron)")
        parser.add_argument("--interval", type=float, default=600, help="seconds between passes (default 600)")

    def handle(self, *args, once=False, interval=600, **options):
        while True:
            close_old_connections()
            enqueued = schedule_pass()
            self.stdout.write(", ".join(f"{count} {what}" for what, count in sorted(enqueued.items()))
                              + " enqueued")
            if once:
                return
            time.sleep(interval)
