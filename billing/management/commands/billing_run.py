"""manage.py billing_run [--date YYYY-MM-DD]: the billing run by hand, in this process."""

import datetime
import time

from django.core.management.base import BaseCommand, CommandError

from billing.run import billing_run
from pictor_billing import clock
from pictor_billing.money import format_usd


class Command(BaseCommand):
    help = ("Renew everything due on or before the date (default today, UTC), a batch of accounts at a time, then send "
            "the charges. Safe to run twice or beside workers: nothing is billed twice. Test accounts are "
            "left out (their test clocks run them).")

    def add_arguments(self, parser):
        parser.add_argument("--date", help="bill what is due on or before this date (YYYY-MM-DD, not after today)")
        parser.add_argument("--concurrency", type=int, default=None,
                            help="charges sent at once (default BILLING_CHARGE_CONCURRENCY)")

    def handle(self, *args, date=None, concurrency=None, **options):
        today = clock.today()
        try:
            upto = datetime.date.fromisoformat(date) if date else today
        except ValueError:
            raise CommandError(f"--date takes YYYY-MM-DD, not {date!r}") from None
        if upto > today:
            raise CommandError(f"{upto} is after today ({today}): nothing is billed before its date.")
        started = time.perf_counter()
        shown = [started]

        def progress(done, due):  # after each batch of accounts: at most a line a second, and the last
            now = time.perf_counter()
            if done == due or now - shown[0] >= 1:
                shown[0] = now
                rate = done / max(now - started, 1e-9)
                self.stdout.write(f"  accounts {done:,} / {due:,} ({rate:,.0f} a second)")

        self.stdout.write(f"Billing run for what is due on or before {upto}:")
        summary = billing_run(upto=upto, concurrency=concurrency, progress=progress)
        elapsed = time.perf_counter() - started
        outcomes = summary.outcomes
        self.stdout.write(self.style.SUCCESS(
            f"Done in {elapsed:.1f} s: {summary.accounts:,} accounts, {summary.renewed:,} renewed "
            f"({summary.renewed / max(elapsed, 1e-9):,.1f} a second), {outcomes.get('succeeded', 0):,} paid, "
            f"{outcomes.get('failed', 0):,} failed, {summary.retries:,} retries, {summary.expired:,} licenses expired, "
            f"{format_usd(summary.charged)} charged."))
