"""`manage.py seed_demo` (run by `make run`): the demo logins work, and running it again changes nothing."""

from django.core.management import call_command

from accounts.models import Account, User
from licenses.models import PriceListEntry
from payments.models import Card


def test_seed_demo_makes_the_demo_logins_and_is_idempotent(db, capsys):
    call_command("seed_demo")
    first = capsys.readouterr().out
    counts = (User.objects.count(), Account.objects.count(), Card.objects.count(), PriceListEntry.objects.count())
    call_command("seed_demo")
    assert (User.objects.count(), Account.objects.count(), Card.objects.count(),
            PriceListEntry.objects.count()) == counts
    assert "demo@pictor.example / pictor-demo-2026" in first
    assert User.objects.get(email="demo@pictor.example").check_password("pictor-demo-2026")
    staff = User.objects.get(email="admin@pictor.example")
    assert staff.is_staff and staff.is_superuser and staff.check_password("pictor-admin-2026")
    clock_owner = User.objects.get(email="clock@pictor.example")
    assert clock_owner.account.is_test_account and clock_owner.account.test_clock_attached
    assert not User.objects.get(email="demo@pictor.example").account.is_test_account


def test_seed_demo_attaches_no_test_clock_where_clocks_are_off(db, settings, capsys):
    settings.TEST_CLOCKS = False
    call_command("seed_demo")
    assert "clock@pictor.example" not in capsys.readouterr().out
    assert not Account.objects.filter(is_test_account=True).exists()
