"""The processor's latency and crashes on PostgreSQL: a slow call for one account never holds up
another, and a process killed mid-payment leaves what reconciliation finishes.

No sleeps: a processor call is held on a threading.Event; a process is killed with os._exit at
the step under test.
"""

import datetime
import os
import subprocess
import sys
import threading
import traceback
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

if connection.vendor != "postgresql":
    pytest.skip(
        f"these tests need PostgreSQL and a second process; the default database is {connection.vendor} "
        "(set DATABASE_URL=postgres://... to run them)",
        allow_module_level=True,
    )

from billing.purchase import license_purchase  # noqa: E402
from billing.reconcile import payments_reconcile  # noqa: E402
from billing.top_up import tokens_top_up  # noqa: E402
from invoices.models import Invoice  # noqa: E402
from licenses.models import Purchase  # noqa: E402
from payments.models import PaymentAttempt  # noqa: E402
from payments.sandbox import SandboxGateway  # noqa: E402
from tests.concurrency.test_races import buyer  # noqa: E402
from tests.helpers import processor_money  # noqa: E402

D = Decimal
WAIT = 60  # seconds; only ever reached when something hangs
ROOT = Path(__file__).resolve().parents[2]


def in_thread(call):
    """Start `call` in a thread with its own connection; a function that joins it and returns its result."""
    box = {}

    def run():
        try:
            box["result"] = call()
        except BaseException:  # noqa: BLE001 - handed to the test below
            box["error"] = traceback.format_exc()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join():
        thread.join(WAIT)
        assert not thread.is_alive(), "still running: it waited on a lock held across the processor call"
        assert "error" not in box, box.get("error")
        return box["result"]

    return join


def test_a_processor_call_held_for_one_account_does_not_stop_another_accounts_purchase_and_top_up(
        prices, packages, monkeypatch):
    alice, bob = buyer(), buyer()
    held_card = alice.account.cards.get().gateway_ref
    entered, release = threading.Event(), threading.Event()
    real_authorize = SandboxGateway.authorize

    def authorize(self, **call):
        if call["card_ref"] == held_card:
            entered.set()
            assert release.wait(WAIT), "never released"
        return real_authorize(self, **call)

    monkeypatch.setattr(SandboxGateway, "authorize", authorize)
    alice_buys = in_thread(lambda: license_purchase(account=alice.account, user=alice, token=uuid.uuid4().hex,
                                                    tier="pro", period="annual", quantity=1))
    assert entered.wait(WAIT)

    # Alice's processor call is held. Bob buys licenses and tokens meanwhile: each takes the
    # invoice-number lock, which her payment must not be holding.
    bob_purchase, _ = in_thread(lambda: license_purchase(account=bob.account, user=bob, token=uuid.uuid4().hex,
                                                         tier="premium", period="annual", quantity=1))()
    bob_top_up, _ = in_thread(lambda: tokens_top_up(account=bob.account, package=packages[0],
                                                    token=uuid.uuid4().hex))()
    assert bob_purchase.invoice.status == bob_top_up.invoice.status == Invoice.PAID
    assert not Purchase.objects.filter(account=alice.account).exists()

    release.set()
    alice_purchase, created = alice_buys()
    assert created and alice_purchase.invoice.status == Invoice.PAID
    # Numbered in the order they were recorded: Bob's two first, then Alice's.
    assert [bob_purchase.invoice.sequence, bob_top_up.invoice.sequence, alice_purchase.invoice.sequence] == [1, 2, 3]


KILL_AT = {
    # (where the process dies: module, attribute, before or after it runs; how the books must end)
    "before the processor was called": (("billing.checkout", "attempt_send", "before"), "none"),
    "after the processor authorized, before its answer was recorded": (
        ("payments.sandbox", "SandboxGateway.authorize", "after"), "complete"),
    "after the purchase was recorded, before the capture": (("billing.checkout", "attempt_capture", "before"),
                                                            "complete"),
    "after the processor captured, before its answer was recorded": (
        ("payments.sandbox", "SandboxGateway.capture", "after"), "complete"),
}

# A purchase in a process of its own that dies (os._exit: no cleanup, no rollback handlers) at one step.
SCRIPT = """
import importlib, os, sys
import django
django.setup()
module_name, attribute, when = sys.argv[2:5]
owner = importlib.import_module(module_name)
*path, name = attribute.split(".")
for part in path:
    owner = getattr(owner, part)
real = getattr(owner, name)
def killed(*args, **kwargs):
    if when == "after":
        real(*args, **kwargs)
    os._exit(9)
setattr(owner, name, killed)
from accounts.models import User
from billing.purchase import license_purchase
user = User.objects.get(pk=int(sys.argv[1]))
license_purchase(account=user.account, user=user, token="killed", tier="pro", period="annual", quantity=2)
os._exit(0)
"""


@pytest.mark.parametrize("where", list(KILL_AT))
def test_a_process_killed_mid_payment_leaves_what_reconciliation_finishes(prices, where):
    (module_name, attribute, when), expected = KILL_AT[where]
    user = buyer()
    database = settings.DATABASES["default"]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "pictor_billing.settings", "SANDBOX_DB": settings.SANDBOX_DB,
           "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"}
    killed = subprocess.run([sys.executable, "-c", SCRIPT, str(user.pk), module_name, attribute, when], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=WAIT)
    assert killed.returncode == 9, killed.stderr[-2000:]
    assert PaymentAttempt.objects.filter(account=user.account).exists(), "the attempt is recorded first"

    payments_reconcile(older_than=datetime.timedelta(0))

    attempt = PaymentAttempt.objects.get(account=user.account)
    purchases = Purchase.objects.filter(account=user.account)
    if expected == "complete":
        purchase = purchases.get()
        assert (purchase.invoice.status, purchase.invoice.total) == (Invoice.PAID, D("1980.00"))
        assert attempt.status == PaymentAttempt.SUCCEEDED
        assert processor_money() == 198000
    else:
        assert not purchases.exists() and not Invoice.objects.filter(account=user.account).exists()
        assert attempt.status == PaymentAttempt.FAILED
        assert processor_money() == 0
