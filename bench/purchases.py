"""Purchases under a slow processor (`make bench`); never part of the test suite. See bench/README.md.

With the sandbox answering every call after SANDBOX_LATENCY_MS (default 200 ms here, about what a
real processor costs), one purchase makes two processor calls (authorize, capture). It times:

1. one purchase alone, on an account of its own (the median of --alone runs);
2. --parallel purchases on as many accounts at once, from as many threads calling the purchase
   service (each thread its own PostgreSQL connection, released together), spread over
   --processes processes as a production server spreads its threads over worker processes
   (default: one per core); and the same with every thread in one process.

Goal: the parallel wall time under 2x one purchase's time. It holds only if no lock is held while
the processor works (the account lock and the invoice-number lock are held for milliseconds), so
the purchases overlap instead of queuing; in one process, the ~45 ms of Python each purchase
spends (ORM, mostly) queue on the interpreter lock, which is why a deployment runs one worker
process per core. After the run every purchase is checked: its invoice paid, the sandbox
holding exactly what was charged, invoice numbers gap-free.
"""

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as base  # noqa: E402  (bench/run.py: database and environment helpers)

GOAL = 2.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--db", default="pictor_bench_purchases", help="database to create and drop")
    parser.add_argument("--latency-ms", type=int, default=200, help="the sandbox's delay per call")
    parser.add_argument("--parallel", type=int, default=20, help="purchases (and accounts, threads) at once")
    parser.add_argument("--alone", type=int, default=5, help="single purchases timed (the median is kept)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2,
                        help="processes the parallel threads are spread over (default: one per core)")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    if "bench" not in args.db:
        parser.error("--db must contain 'bench': the database is dropped at the end")
    return args


def seed(count: int) -> list:
    from django.core.management import call_command

    from billing.signup import account_signup
    from licenses.models import PriceListEntry
    from payments.services import card_add

    call_command("migrate", interactive=False, verbosity=0)
    for (tier, period), price in base.PRICES.items():
        PriceListEntry.objects.create(tier=tier, period=period, effective_from=datetime.date(2020, 1, 1),
                                      unit_price=price)
    users = []
    for number in range(count):
        user = account_signup(company_name=f"Bench buyer {number}", email=f"buyer{number}@example.com",
                              password=base.PASSWORD)
        card_add(account=user.account, number="4242424242424242", exp_month=12,
                 exp_year=datetime.date.today().year + 3, cvc="123")
        users.append(user)
    return users


def one_purchase(user):
    from billing.purchase import license_purchase

    purchase, created = license_purchase(account=user.account, user=user, token=uuid.uuid4().hex, tier="pro",
                                         period="annual", quantity=1)
    assert created
    return purchase


def timed_alone(users) -> list[float]:
    times = []
    for user in users:
        started = time.perf_counter()
        one_purchase(user)
        times.append(time.perf_counter() - started)
    return times


def threads_buying(users, go=None) -> list[str]:
    """One thread per user, each buying once, released together once every thread is connected
    (after `go()` returns, when given: the signal from the parent process). Their errors."""
    from django.db import connection

    ready = threading.Barrier(len(users), action=go)
    errors = []

    def buyer(user):
        try:
            connection.ensure_connection()
            ready.wait()
            one_purchase(user)
        except BaseException as error:  # noqa: BLE001 - reported by the caller
            errors.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=buyer, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def timed_parallel(users) -> float:
    """All the threads in this one process."""
    clock = {}
    errors = threads_buying(users, go=lambda: clock.setdefault("started", time.perf_counter()))
    elapsed = time.perf_counter() - clock["started"]
    if errors:
        raise SystemExit(f"purchases failed: {errors[:3]}")
    return elapsed


def timed_processes(users, processes: int) -> float:
    """The threads spread over `processes` forked processes, all released by one start signal."""
    from django.db import connections

    connections.close_all()
    reads, writes = os.pipe()
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    children = []
    for index in range(processes):
        pid = os.fork()
        if pid == 0:  # the child: its threads connect, say ready, and buy once the parent says go
            os.close(writes)

            def go():
                os.write(ready_w, b"r")
                os.read(reads, 1)

            errors = threads_buying(users[index::processes], go=go)
            os.write(done_w, b"1" if not errors else b"0")
            os._exit(0)
        children.append(pid)
    for _ in range(processes):
        os.read(ready_r, 1)  # every thread of every child is connected and waiting
    started = time.perf_counter()
    os.write(writes, b"g" * processes)
    results = [os.read(done_r, 1) for _ in range(processes)]
    elapsed = time.perf_counter() - started
    for pid in children:
        os.waitpid(pid, 0)
    if results != [b"1"] * processes:
        raise SystemExit("purchases failed in a child process")
    return elapsed


def books_check(expected: int) -> dict:
    from invoices.models import Invoice
    from payments.models import PaymentAttempt
    from payments.sandbox import SandboxGateway

    invoices = list(Invoice.objects.order_by("sequence"))
    assert len(invoices) == expected and all(invoice.status == Invoice.PAID for invoice in invoices)
    assert [invoice.sequence for invoice in invoices] == list(range(1, expected + 1)), "numbers not gap-free"
    charged = sum(int(a.amount * 100) for a in PaymentAttempt.objects.filter(status=PaymentAttempt.SUCCEEDED))
    held = sum(p["amount"] for p in SandboxGateway().payments() if p["status"] == "succeeded")
    assert charged == held == expected * 99000, (charged, held)  # one Pro annual license each
    return {"invoices": expected, "all paid": True, "gap-free": True, "processor holds": held}


def main() -> int:
    args = parse_args()
    sandbox_dir = tempfile.mkdtemp(prefix="pictor-bench-sandbox-")
    os.environ["SANDBOX_DB"] = str(Path(sandbox_dir) / "sandbox.sqlite3")
    os.environ["SANDBOX_LATENCY_MS"] = "0"  # seeding goes at full speed
    os.environ["DATABASE_URL"] = f"{args.pg.rstrip('/')}/{args.db}"
    base.database_create(args.pg, args.db)
    try:
        base.django_setup()
        from django.conf import settings

        users = seed(args.alone + 2 * args.parallel)
        settings.SANDBOX_LATENCY_MS = args.latency_ms
        alone = statistics.median(timed_alone(users[:args.alone]))
        one_process = timed_parallel(users[args.alone:args.alone + args.parallel])
        together = timed_processes(users[args.alone + args.parallel:], args.processes)
        books = books_check(args.alone + 2 * args.parallel)
        ratio = together / alone
        result = {
            "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "sandbox latency ms": args.latency_ms, "one purchase s (median)": round(alone, 3),
            f"{args.parallel} purchases at once s ({args.processes} processes)": round(together, 3),
            "ratio": round(ratio, 2), "goal": f"< {GOAL}",
            f"{args.parallel} purchases at once s (1 process)": round(one_process, 3),
            "ratio in 1 process": round(one_process / alone, 2),
            "met": ratio < GOAL, "books": books, "loadavg": os.getloadavg(),
        }
        # bench/report.py's rows (make bench's one table).
        result["figures"] = [
            base.figure(f"one purchase alone, sandbox at {args.latency_ms} ms (median)", round(alone * 1000), "ms"),
            base.figure(f"{args.parallel} purchases at once ({args.processes} processes)", round(together * 1000),
                        "ms", baseline_name="one purchase alone", baseline=round(alone * 1000), ratio=round(ratio, 2),
                        goal=f"< {GOAL}× baseline", met=ratio < GOAL),
            base.figure(f"{args.parallel} purchases at once (1 process)", round(one_process * 1000), "ms",
                        baseline_name="one purchase alone", baseline=round(alone * 1000),
                        ratio=round(one_process / alone, 2), goal="reported"),
            base.figure("purchases' books (paid, gap-free, processor holds what was charged)", "consistent", "",
                        goal="consistent", met=True),
        ]
        base.RESULTS.mkdir(exist_ok=True)
        (base.RESULTS / "purchases.json").write_text(json.dumps(result, indent=2))
        print(f"\nPurchases with the processor answering after {args.latency_ms} ms (PostgreSQL)")
        print(f"  one purchase alone (median of {args.alone}): {alone * 1000:8.0f} ms")
        print(f"  {args.parallel} purchases on {args.parallel} accounts at once, {args.parallel} threads in "
              f"{args.processes} processes: {together * 1000:6.0f} ms")
        print(f"  the same, all {args.parallel} threads in 1 process:          {one_process * 1000:6.0f} ms "
              f"(ratio {one_process / alone:.2f})")
        print(f"  ratio {ratio:.2f} (goal < {GOAL}: {'met' if ratio < GOAL else 'NOT met'}); books checked: "
              f"{books['invoices']} invoices paid, gap-free; load {os.getloadavg()[0]:.2f}")
        return 0 if ratio < GOAL else 1
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            base.database_drop(args.pg, args.db)


if __name__ == "__main__":
    sys.exit(main())
