"""The billing run on its real queue, on PostgreSQL: `manage.py db_worker` and `manage.py
billing_scheduler` processes against the test database, the sandbox processor's books shared.

- Two workers and a duplicate scheduler on one day's run bill each account once (the same batches
  enqueued twice, run side by side).
- A worker killed mid-run leaves its task "running" in the task table for ever (django-tasks-db
  never reclaims it); the scheduler's next pass and a fresh worker finish the rest, nothing doubled.

No sleeps for timing: a worker dies by os._exit at a chosen step (as in test_payment_isolation),
and the test polls the database for the state it waits for, with a generous timeout.
"""

import datetime
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

if connection.vendor != "postgresql":
    pytest.skip(
        f"these tests run db_worker processes that claim tasks with SKIP LOCKED, against the test database; "
        f"they need PostgreSQL and the default database is {connection.vendor} "
        "(set DATABASE_URL=postgres://... to run them)",
        allow_module_level=True,
    )

from django.tasks import TaskResultStatus  # noqa: E402
from django_tasks_db.models import DBTaskResult  # noqa: E402

from billing.models import Renewal  # noqa: E402
from invoices.models import Invoice, InvoiceSequence  # noqa: E402
from licenses.models import License  # noqa: E402
from payments.models import Card, PaymentAttempt  # noqa: E402
from payments.sandbox import SandboxGateway  # noqa: E402
from payments.services import card_make_default  # noqa: E402
from pictor_billing import clock  # noqa: E402
from tests.conftest import DECLINES_CHARGES, add_card  # noqa: E402
from tests.factories import AccountFactory  # noqa: E402
from tests.helpers import buy_directly  # noqa: E402

D = Decimal
WAIT = 60  # seconds; only ever reached when something hangs
POLL = 0.05  # seconds between two looks at the database while waiting for a state
ROOT = Path(__file__).resolve().parents[2]
RENEW_TASK = "billing.tasks.renew_accounts_task"
# A pro annual license at the 2020 price list, alone on its account: no bracket, no credit.
RENEWAL_TOTAL = D("990.00")


# --- the accounts ----------------------------------------------------------------------------------

def accounts_due_today(count: int, *, declining_every: int = 5) -> dict[int, bool]:
    """`count` accounts, each with one pro annual license bought a year ago and due now; every
    `declining_every`-th one's default card (0341) declines every charge. {account id: pays}."""
    today = clock.today()
    try:
        a_year_ago = today.replace(year=today.year - 1)
    except ValueError:  # Feb 29: bought on Feb 28, due yesterday
        a_year_ago = today.replace(year=today.year - 1, day=28)
    bought = datetime.datetime.combine(a_year_ago, datetime.time(12), tzinfo=datetime.UTC)
    accounts = {}
    for n in range(count):
        account = AccountFactory()
        add_card(account)
        buy_directly(account, now=bought, tier="pro", period="annual")
        pays = (n + 1) % declining_every != 0
        if not pays:
            card_make_default(account=account, card=add_card(account, DECLINES_CHARGES))
        accounts[account.pk] = pays
    due = set(License.objects.filter(account_id__in=accounts).values_list("period_end", flat=True))
    assert len(due) == 1 and due.pop() <= today, "every license falls due today"
    return accounts


def renewal_charges_at_processor() -> list[dict]:
    """The sandbox's books, renewal charges only (a purchase authorizes, then captures)."""
    return [payment for payment in SandboxGateway().payments() if payment["capture"] == "automatic"]


def assert_each_account_billed_once(accounts: dict[int, bool]) -> None:
    """One renewal and one renewal invoice per account; the processor charged each paying account
    once and declined each declining one once; invoice numbers without a gap."""
    renewals = {renewal.account_id: renewal for renewal in Renewal.objects.select_related("invoice")}
    assert sorted(renewals) == sorted(accounts)
    assert Renewal.objects.count() == len(accounts)
    renewal_invoices = Counter(Invoice.objects.filter(kind=Invoice.RENEWAL).values_list("account_id", flat=True))
    assert renewal_invoices == Counter(accounts.keys()), "one renewal invoice per account"

    default_cards = dict(Card.objects.filter(account_id__in=accounts, is_default=True)
                         .values_list("gateway_ref", "account_id"))
    at_processor = Counter()
    for payment in renewal_charges_at_processor():
        at_processor[default_cards[payment["card_ref"]], payment["status"], payment["amount"]] += 1
    cents = int(RENEWAL_TOTAL * 100)
    expected = Counter({(account_id, "succeeded" if pays else "failed", cents): 1
                        for account_id, pays in accounts.items()})
    assert at_processor == expected, "the processor charged each paying account once, declined each other once"

    for account_id, pays in accounts.items():
        renewal = renewals[account_id]
        attempts = list(PaymentAttempt.objects.filter(invoice=renewal.invoice).values_list("status", flat=True))
        assert renewal.invoice.total == RENEWAL_TOTAL
        if pays:
            assert (renewal.status, renewal.invoice.status, attempts) == (Renewal.PAID, Invoice.PAID, ["succeeded"])
        else:
            assert (renewal.status, renewal.invoice.status, attempts) == (Renewal.PAST_DUE, Invoice.OPEN, ["failed"])
            assert renewal.failed_attempts == 1
            assert renewal.next_retry_on == renewal.first_failed_on + datetime.timedelta(days=1)
            assert set(License.objects.filter(account_id=account_id).values_list("status", flat=True)) == {
                License.PAST_DUE}

    for sequence in InvoiceSequence.objects.all():
        numbers = sorted(Invoice.objects.filter(series=sequence.series, year=sequence.year)
                         .values_list("sequence", flat=True))
        assert numbers == list(range(1, sequence.last_number + 1)), f"a gap in {sequence}"


# --- the processes ---------------------------------------------------------------------------------

# A db_worker that dies (os._exit: no cleanup, no rollback handlers, its task left "running") at the
# n-th call of one function, before or after the call runs.
DOOMED_WORKER = """
import importlib, itertools, os, sys, threading
import django
django.setup()
module_name, attribute, when, nth = sys.argv[1:5]
owner = importlib.import_module(module_name)
*path, name = attribute.split(".")
for part in path:
    owner = getattr(owner, part)
real = getattr(owner, name)
calls, lock = itertools.count(1), threading.Lock()
def doomed(*args, **kwargs):
    with lock:
        call = next(calls)
    if call < int(nth):
        return real(*args, **kwargs)
    if when == "after":
        real(*args, **kwargs)
    os._exit(9)
setattr(owner, name, doomed)
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", "db_worker", *sys.argv[5:]])
"""


class Processes:
    """The test's subprocesses, each logging to a file of its own; all stopped at the end."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.running: dict[str, subprocess.Popen] = {}

    def env(self, **extra) -> dict:
        database = settings.DATABASES["default"]
        return {
            **os.environ, "DJANGO_SETTINGS_MODULE": "pictor_billing.settings", "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
            "TASKS_BACKEND": "database", "SANDBOX_DB": settings.SANDBOX_DB,
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend", **extra}

    def start(self, name: str, args: list[str], **env) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        process = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=self.env(**env), stdout=log,
                                   stderr=subprocess.STDOUT)
        log.close()
        self.running[name] = process
        return process

    def worker(self, name: str, *, doomed_at: tuple[str, str, str, int] | None = None, **env) -> subprocess.Popen:
        """A db_worker polling the queue every 50 ms; `doomed_at` (module, attribute, when, n) kills it there."""
        options = ["--worker-id", name, "--interval", "0.05", "--no-startup-delay", "--no-reload"]
        if doomed_at is None:
            process = self.start(name, ["manage.py", "db_worker", *options], **env)
        else:
            module_name, attribute, when, nth = doomed_at
            process = self.start(name, ["-c", DOOMED_WORKER, module_name, attribute, when, str(nth), *options], **env)
        wait_until(lambda: "Starting worker" in self.log(name) or process.poll() is not None,
                   f"worker {name} started", self)
        return process

    def scheduler_once(self, name: str, **env) -> subprocess.Popen:
        return self.start(name, ["manage.py", "billing_scheduler", "--once"], **env)

    def finished(self, name: str) -> int:
        """Wait for a process that ends by itself; its exit code."""
        try:
            return self.running[name].wait(WAIT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} still running after {WAIT} s\n{self.tails()}")

    def stop(self, name: str) -> None:
        """SIGTERM (a db_worker finishes its task, then exits), SIGKILL if it does not."""
        process = self.running.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def tails(self) -> str:
        return "\n".join(f"--- {path.stem}\n{path.read_text()[-3000:]}" for path in sorted(self.logs.glob("*.log")))


@pytest.fixture
def processes(transactional_db, tmp_path):
    """Started after the test database is set up, so stopped before it is flushed."""
    logs = tmp_path / "logs"
    logs.mkdir()
    started = Processes(logs)
    try:
        yield started
    finally:
        started.stop_all()


def wait_until(condition, what: str, processes: Processes) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {WAIT} s for: {what}\n{processes.tails()}")
        time.sleep(POLL)


def queue_drained(*, but: set[str] = frozenset()) -> bool:
    """Nothing waiting and nothing running on the queue (but the tasks named, a dead worker's)."""
    return not (DBTaskResult.objects.filter(status__in=[TaskResultStatus.READY, TaskResultStatus.RUNNING])
                .exclude(pk__in=but).exists())


def assert_no_task_failed(processes: Processes) -> None:
    failed = list(DBTaskResult.objects.filter(status=TaskResultStatus.FAILED).values_list("task_path", "traceback"))
    assert not failed, f"{failed}\n{processes.tails()}"


# --- the tests -------------------------------------------------------------------------------------

def test_two_workers_and_a_duplicate_scheduler_bill_each_account_once(prices, processes):
    accounts = accounts_due_today(40)

    # Two schedulers make the same pass at the same moment: every batch of two accounts is enqueued twice.
    for name in ("scheduler-1", "scheduler-2"):
        processes.scheduler_once(name, BILLING_ACCOUNTS_PER_TASK="2")
    assert processes.finished("scheduler-1") == processes.finished("scheduler-2") == 0, processes.tails()
    assert DBTaskResult.objects.filter(task_path=RENEW_TASK).count() == 2 * len(accounts) // 2

    # Two workers take the queue, an account's two tasks side by side in it.
    for name in ("worker-1", "worker-2"):
        processes.worker(name)
    wait_until(queue_drained, "the queue drained", processes)
    processes.stop_all()

    assert_no_task_failed(processes)
    renew_tasks = list(DBTaskResult.objects.filter(task_path=RENEW_TASK))
    assert all(len(task.worker_ids) == 1 for task in renew_tasks), "each task was run by one worker"
    assert {task.worker_ids[0] for task in renew_tasks} == {"worker-1", "worker-2"}, "both workers took tasks"
    assert sum(task.return_value["renewed"] for task in renew_tasks) == len(accounts), "each account renewed once"
    assert_each_account_billed_once(accounts)


KILLED_AT = {
    # (where the worker dies: module, attribute, before or after it runs, at its n-th call)
    # Batches of 4 accounts: the second batch's transaction is cut short as it records the charges.
    "while writing a batch's renewals, before it committed": ("billing.renewals", "_charges_record", "before", 2),
    "after the processor charged, before its answer was recorded": (
        "payments.sandbox", "SandboxGateway.charge", "after", 5),
}


@pytest.mark.parametrize("where", list(KILLED_AT))
def test_a_worker_killed_mid_run_is_finished_by_the_next_scheduler_pass_and_nothing_is_doubled(
        prices, processes, where):
    accounts = accounts_due_today(20)
    # The charges a dead worker claimed are claimed again after a second, not five minutes.
    claim_timeout = {"BILLING_CLAIM_TIMEOUT_SECONDS": "1"}

    processes.scheduler_once("scheduler-1", BILLING_ACCOUNTS_PER_TASK="4")
    assert processes.finished("scheduler-1") == 0, processes.tails()
    processes.worker("doomed", doomed_at=KILLED_AT[where])
    assert processes.finished("doomed") == 9, processes.tails()

    # Its task is "running" for ever: django-tasks-db never gives it to another worker.
    dead = list(DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING).values_list("pk", "worker_ids"))
    assert [worker_ids for _, worker_ids in dead] == [["doomed"]]
    dead_task = {pk for pk, _ in dead}
    if KILLED_AT[where][0] == "billing.renewals":
        # The second batch rolled back whole with the dead connection; the first batch's four are recorded.
        assert Renewal.objects.count() == 4
    else:
        # The charge step goes before waiting batches: the first batch was charged, the second batch's
        # renewals are recorded, and the processor took a charge of it whose answer our books lack.
        assert Renewal.objects.count() == 8
        pending = set(PaymentAttempt.objects.filter(purpose=PaymentAttempt.RENEWAL, status=PaymentAttempt.PENDING)
                      .values_list("pk", flat=True))
        assert {payment["attempt_id"] for payment in renewal_charges_at_processor()} & pending

    # A fresh worker takes what is left on the queue; the scheduler's next pass enqueues what the
    # dead worker was doing (a renewal still due, or the charges it claimed once they are stale).
    processes.worker("fresh", **claim_timeout)
    processes.start("scheduler-2", ["manage.py", "billing_scheduler", "--interval", "0.25"], **claim_timeout)

    def everyone_billed() -> bool:
        return (Renewal.objects.filter(status__in=[Renewal.PAID, Renewal.PAST_DUE]).count() == len(accounts)
                and not PaymentAttempt.objects.filter(purpose=PaymentAttempt.RENEWAL,
                                                      status=PaymentAttempt.PENDING).exists())

    wait_until(everyone_billed, "every account billed", processes)
    processes.stop("scheduler-2")
    wait_until(lambda: queue_drained(but=dead_task), "the queue drained", processes)
    processes.stop_all()

    assert_no_task_failed(processes)
    assert set(DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING).values_list("pk", flat=True)) == \
        dead_task, "the dead worker's task is still 'running'; no one else ran it"
    assert_each_account_billed_once(accounts)
