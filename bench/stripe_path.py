"""The Stripe path against the sandbox (`make bench`); never part of the test suite. See bench/README.md.

One license purchase (authorize, record, capture) timed --count times on each gateway, on one
PostgreSQL database, in one process: the built-in sandbox with no latency, then the Stripe gateway
against localstripe (started here on a free loopback port; the card saved through a SetupIntent as
Stripe.js would). Reported: the median and p90 of each and their ratio, so the gateway's own cost
(the SDK, HTTP to a local server, two to three API calls a purchase) is seen against the rest of a
purchase. Output: a table and bench/results/stripe_path.json.
"""

import argparse
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as base  # noqa: E402  (bench/run.py: database and environment helpers)

WARM_UP = 3


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--db", default="pictor_bench_stripe", help="database to create and drop")
    parser.add_argument("--count", type=int, default=30, help="purchases timed on each gateway")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    if "bench" not in args.db:
        parser.error("--db must contain 'bench': the database is dropped at the end")
    if not 1 <= args.count <= 1000:
        parser.error("--count 1-1000")
    return args


def localstripe_start() -> tuple[subprocess.Popen, str]:
    port = base.free_port()
    binary = Path(sys.executable).with_name("localstripe")
    process = subprocess.Popen([str(binary), "--port", str(port), "--from-scratch"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit("localstripe did not start") from None
            time.sleep(0.05)


def seed(count: int, gateway: str, api_base: str = "") -> list:
    import stripe

    from billing.signup import account_signup
    from payments.services import card_add, card_setup_begin, card_setup_finish

    users = []
    for number in range(count):
        user = account_signup(company_name=f"Bench {gateway} {number}", email=f"{gateway}{number}@example.com",
                              password=base.PASSWORD)
        if gateway == "sandbox":
            card_add(account=user.account, number="4242424242424242", exp_month=12,
                     exp_year=datetime.date.today().year + 3, cvc="123")
        else:
            client = stripe.StripeClient("sk_test_bench", base_addresses={"api": api_base})
            setup = card_setup_begin(account=user.account)
            method = client.v1.payment_methods.create(params={"type": "card", "card": {
                "number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123"}})
            client.v1.setup_intents.confirm(setup["id"], params={"payment_method": method.id})
            card_setup_finish(account=user.account, setup_ref=setup["id"])
        users.append(user)
    return users


def timed(users) -> list[float]:
    from billing.purchase import license_purchase

    seconds = []
    for user in users:
        started = time.perf_counter()
        _, created = license_purchase(account=user.account, user=user, token=uuid.uuid4().hex, tier="pro",
                                      period="monthly", quantity=1)
        seconds.append(time.perf_counter() - started)
        assert created
    return seconds


def figures(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {"median ms": round(statistics.median(ordered) * 1000, 1),
            "p90 ms": round(base.percentile(ordered, 90) * 1000, 1)}


def main() -> int:
    args = parse_args()
    os.environ["SANDBOX_DB"] = str(Path(tempfile.mkdtemp(prefix="pictor-bench-sandbox-")) / "sandbox.sqlite3")
    os.environ["SANDBOX_LATENCY_MS"] = "0"
    os.environ["DATABASE_URL"] = f"{args.pg.rstrip('/')}/{args.db}"
    os.environ.setdefault("TASKS_BACKEND", "immediate")
    base.database_create(args.pg, args.db)
    emulator, api_base = localstripe_start()
    try:
        base.django_setup()
        from django.conf import settings
        from django.core.management import call_command

        from licenses.models import PriceListEntry

        call_command("migrate", interactive=False, verbosity=0)
        for (tier, period), price in base.PRICES.items():
            PriceListEntry.objects.create(tier=tier, period=period, effective_from=datetime.date(2020, 1, 1),
                                          unit_price=price)
        # The first purchases on each gateway warm caches and connections; they are not counted.
        sandbox = figures(timed(seed(args.count + WARM_UP, "sandbox"))[WARM_UP:])
        settings.PAYMENT_GATEWAY, settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE = (
            "stripe", "sk_test_bench", api_base)
        stripe_path = figures(timed(seed(args.count + WARM_UP, "stripe", api_base))[WARM_UP:])
        ratio = stripe_path["median ms"] / sandbox["median ms"]
        result = {"when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "count": args.count,
                  "sandbox (0 ms)": sandbox, "stripe (localstripe)": stripe_path, "ratio of medians": round(ratio, 2),
                  "loadavg": os.getloadavg()}
        # bench/report.py's rows (make bench's one table).
        result["figures"] = [
            base.figure("one purchase, sandbox at 0 ms (median)", sandbox["median ms"], "ms"),
            base.figure("one purchase, Stripe gateway vs localstripe (median)", stripe_path["median ms"], "ms",
                        baseline_name="sandbox median", baseline=sandbox["median ms"], ratio=round(ratio, 2),
                        goal="reported"),
        ]
        base.RESULTS.mkdir(exist_ok=True)
        (base.RESULTS / "stripe_path.json").write_text(json.dumps(result, indent=2))
        print(f"\nOne license purchase, {args.count} on each gateway (PostgreSQL, one process)")
        print(f"  sandbox, no latency:     median {sandbox['median ms']:7.1f} ms   p90 {sandbox['p90 ms']:7.1f} ms")
        print(f"  Stripe vs localstripe:   median {stripe_path['median ms']:7.1f} ms   "
              f"p90 {stripe_path['p90 ms']:7.1f} ms")
        print(f"  ratio of medians {ratio:.2f}; load {os.getloadavg()[0]:.2f}")
        return 0
    finally:
        from django.db import connections

        connections.close_all()
        emulator.terminate()
        emulator.wait(10)
        if not args.keep_db:
            base.database_drop(args.pg, args.db)


if __name__ == "__main__":
    sys.exit(main())
