"""manage.py test_clock attach|advance|detach ACCOUNT [TIME]: staff's test clocks, from the command line."""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Account
from billing.clocks import (
    ClockRefused,
    clock_advance,
    clock_attach,
    clock_detach,
    parse_moment,
)
from pictor_billing import clock


class Command(BaseCommand):
    help = ("Attach a test clock to a fresh account (attach ACCOUNT START), move it forward running everything "
            "due on the way (advance ACCOUNT TIME|+15d), or freeze it (detach ACCOUNT). ACCOUNT: an account "
            "id or a user's email; times in ISO 8601, e.g. 2027-01-31T10:00:00Z.")

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["attach", "advance", "detach"])
        parser.add_argument("account")
        parser.add_argument("time", nargs="?")

    def handle(self, *args, action, account, time=None, **options):
        target = _account(account)
        try:
            if action == "attach":
                if not time:
                    raise CommandError("attach needs the start time")
                target = clock_attach(account=target, start=parse_moment(time))
                at = clock.now(target)
                self.stdout.write(f"{target} is a test account; its clock stands at {at:%Y-%m-%d %H:%M} UTC.")
            elif action == "advance":
                if not time:
                    raise CommandError("advance needs the new time (or +15d)")
                summary = clock_advance(account=target, to=parse_moment(time, since=clock.now(target)))
                self.stdout.write(f"{target} now at {clock.now(target):%Y-%m-%d %H:%M} UTC: {summary.renewed} renewed, "
                                  f"{summary.retries} retries, {summary.expired} licenses expired, "
                                  f"{summary.outcomes.get('succeeded', 0)} paid, {summary.outcomes.get('failed', 0)} "
                                  "failed.")
            else:
                target = clock_detach(account=target)
                self.stdout.write(f"{target}'s clock is detached, frozen at {clock.now(target):%Y-%m-%d %H:%M} UTC.")
        except ClockRefused as refused:
            raise CommandError(str(refused)) from None


def _account(text: str) -> Account:
    account = (Account.objects.filter(pk=int(text)).first() if text.isdigit()
               else Account.objects.filter(users__email__iexact=text.strip()).first())
    if account is None:
        raise CommandError(f"No account {text!r} (give an account id or a user's email).")
    return account
