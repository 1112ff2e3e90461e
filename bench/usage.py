"""Device usage API benchmark (`make bench`, after bench/run.py); never part of the test suite.

1. Creates a fresh PostgreSQL database (default pictor_bench_usage), migrates it and seeds one
   account (or --accounts N) with a large token balance and a device API key. With one account
   every debit queues on that account's row lock (the worst case: one busy event's booths); with
   N, client i spends on account i mod N.
2. Counts the SQL queries of one POST /api/v1/usage, in-process (Django test Client +
   CaptureQueriesContext against the bench database).
3. Starts gunicorn (DEBUG off, free loopback port; bench/run.py's helper) and, in that one server
   run, sends a fixed number of requests from K client threads (default 8): POST /api/v1/usage
   (1 AI image, a distinct idempotency key per request, so every request really debits) and
   GET /healthz (the bare Django baseline), taking turns round by round. Reports requests/s,
   p50 and p99 latency and ratio = usage rps / baseline rps (goal >= 0.4).
4. Checks the books afterwards: one ledger entry and one token per usage request sent, each
   balance equal to its ledger's sum and to its newest running balance (exit status 1 if not).
5. Prints a table, writes bench/results/usage.json, stops gunicorn and drops the database, also on
   errors and Ctrl-C.
"""

import argparse
import json
import os
import signal
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as base  # noqa: E402  (bench/run.py: database, gunicorn and statistics helpers)

HOST = base.HOST
USAGE_PATH = "/api/v1/usage"
RATIO_GOAL = 0.4
START_BALANCE = 10_000_000


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"),
                        help="PostgreSQL server URL without a database name (env BENCH_PG_URL)")
    parser.add_argument("--db", default="pictor_bench_usage", help="database to create and drop (must contain 'bench')")
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per endpoint")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured requests per endpoint first")
    parser.add_argument("--rounds", type=int, default=4, help="the endpoints take turns in this many rounds")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads (K)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--accounts", type=int, default=1,
                        help="spread the clients over this many accounts (1: every debit queues on one account's lock)")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    args = parser.parse_args()
    if "bench" not in args.db:
        parser.error("--db must contain 'bench': the database is dropped at the end")
    if not 1 <= args.clients <= 64 or not 1 <= args.requests <= 100_000 or not 1 <= args.rounds <= args.requests \
            or not 1 <= args.accounts <= args.clients:
        parser.error("--clients 1-64, --requests 1-100000, --rounds 1..requests, --accounts 1..clients")
    return args


def seed(count: int) -> list[tuple[object, str]]:
    """`count` accounts, each with START_BALANCE tokens and a device key: (account, plain key) pairs."""
    from django.core.management import call_command

    from accounts.api_keys import api_key_create
    from accounts.models import Account
    from tokens.services import tokens_adjust

    call_command("migrate", interactive=False, verbosity=0)
    seeded = []
    for n in range(1, count + 1):
        account = Account.objects.create(name=f"Bench Booths {n} Ltd")
        tokens_adjust(account=account, amount=START_BALANCE, reason="benchmark", user=None)
        seeded.append((account, api_key_create(account=account, name="bench booth", created_by=None)[1]))
    return seeded


def usage_body(tag: str) -> bytes:
    return json.dumps({"output_type": "ai_image", "quantity": 1, "event_id": "bench",
                       "idempotency_key": f"{tag}-{uuid.uuid4().hex}"}).encode()


def count_queries(key: str) -> dict:
    """SQL queries of one usage request (after one warm-up request), in-process."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    headers = {"Authorization": f"Bearer {key}"}
    client.post(USAGE_PATH, usage_body("count"), content_type="application/json", headers=headers)
    with CaptureQueriesContext(connection) as captured:
        response = client.post(USAGE_PATH, usage_body("count"), content_type="application/json", headers=headers)
    if response.status_code != 201:
        raise RuntimeError(f"usage request failed in-process: HTTP {response.status_code} {response.content[:200]!r}")
    return {"count": len(captured.captured_queries), "sql": [q["sql"] for q in captured.captured_queries]}


def load(port: int, method: str, path: str, headers: list[dict], total: int, clients: int, *, expect: int) -> dict:
    """bench/run.py's load, with a fresh usage body for every POST and `expect` as the only good status."""
    return base.load(port, path, headers, total, clients, method=method,
                     body=usage_body if method == "POST" else None,
                     check=lambda status, content: status == expect)


def books(accounts: list, sent: int) -> dict:
    """The ledgers after the run: one usage entry per request sent, and balances that add up."""
    from tokens.models import TokenEntry
    from tokens.services import token_balance

    usage = TokenEntry.objects.filter(account__in=accounts, kind=TokenEntry.USAGE).count()
    balances_add_up = True
    spent = 0
    for account in accounts:
        entries = TokenEntry.objects.filter(account=account)
        balance, ledger_sum = token_balance(account), entries.balance()
        newest = entries.order_by("-id").values_list("balance_after", flat=True).first()
        balances_add_up &= balance == ledger_sum == newest
        spent += START_BALANCE - balance
    ok = usage == sent == spent and balances_add_up
    return {"usage_entries": usage, "usage_requests_sent": sent, "tokens_spent": spent,
            "balances_equal_ledger_sums": balances_add_up, "consistent": ok}


def main() -> int:
    args = parse_args()
    db_url = f"{args.pg.rstrip('/')}/{args.db}"
    os.environ.update(DATABASE_URL=db_url, DEBUG="0", LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
                      DJANGO_SETTINGS_MODULE="pictor_billing.settings")
    base.RESULTS.mkdir(parents=True, exist_ok=True)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))

    server = None
    created = False
    load_before = [round(x, 2) for x in os.getloadavg()]
    try:
        print(f"creating database {args.db} ...", flush=True)
        base.database_create(args.pg, args.db)
        created = True
        base.django_setup()
        from django.db import connections

        print(f"migrating and seeding ({args.accounts} account(s) with {START_BALANCE:,} tokens and a device key) ...",
              flush=True)
        seeded = seed(args.accounts)
        queries = count_queries(seeded[0][1])
        connections.close_all()

        server = base.Gunicorn(workers=args.workers, env=dict(os.environ), log_path=base.RESULTS / "gunicorn-usage.log")
        server.wait_ready()
        print(f"gunicorn on {HOST}:{server.port}, {args.workers} workers; {args.requests} requests per endpoint "
              f"from {args.clients} client threads ...", flush=True)
        endpoints = {
            "healthz": ("GET", "/healthz", [{}], 200),
            "usage": ("POST", USAGE_PATH, [{"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
                                           for _, key in seeded], 201),
        }
        sent = 0
        for name, (method, path, headers, expect) in endpoints.items():
            if args.warmup:
                load(server.port, method, path, headers, args.warmup, args.clients, expect=expect)
                sent += args.warmup if name == "usage" else 0
        per_round = [args.requests // args.rounds + (1 if i < args.requests % args.rounds else 0)
                     for i in range(args.rounds)]
        rounds = {name: [] for name in endpoints}
        for count in per_round:
            for name, (method, path, headers, expect) in endpoints.items():
                rounds[name].append(load(server.port, method, path, headers, count, args.clients, expect=expect))
                sent += count if name == "usage" else 0
        http_results = {name: base.summarize(done) for name, done in rounds.items()}
        server.stop()
        if server.log_tail().strip():
            print(f"gunicorn log ({base.RESULTS / 'gunicorn-usage.log'}):\n{server.log_tail()}", file=sys.stderr)
        server = None

        checked = books([account for account, _ in seeded], sent + 2)  # + count_queries' two requests
        ratio = round(http_results["usage"]["rps"] / http_results["healthz"]["rps"], 3)
        report = {
            **base.report_header(args, load_before, accounts=args.accounts, usage_path=USAGE_PATH),
            "http": http_results,
            "ratio": ratio,
            "ratio_goal": RATIO_GOAL,
            "ratio_goal_met": ratio >= RATIO_GOAL,
            "queries": queries,
            "books": checked,
        }
        (base.RESULTS / "usage.json").write_text(json.dumps(report, indent=2) + "\n")
        print_table(report)
        return 0 if checked["consistent"] else 1
    finally:
        if server is not None:
            server.stop()
        if created and not args.keep_db:
            try:
                from django.db import connections

                connections.close_all()
            except Exception:  # noqa: BLE001 - Django may not be set up yet
                pass
            base.database_drop(args.pg, args.db)
            print(f"dropped database {args.db}", flush=True)


def print_table(report: dict) -> None:
    print()
    print(f"{'endpoint':<34}{'requests':>9}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}")
    accounts = report["config"]["accounts"]
    labels = {"healthz": "GET /healthz (baseline)",
              "usage": f"POST /api/v1/usage ({accounts} account{'s' if accounts > 1 else ''})"}
    for name, result in report["http"].items():
        ratio = f"{report['ratio']:.2f}" if name == "usage" else "1.00"
        print(f"{labels[name]:<34}{result['requests']:>9}{result['rps']:>10.1f}{result['p50_ms']:>9.2f}"
              f"{result['p99_ms']:>9.2f}{ratio:>8}")
    print(f"ratio goal >= {report['ratio_goal']}: {'met' if report['ratio_goal_met'] else 'NOT met'}")
    print(f"SQL queries per usage request: {report['queries']['count']}")
    b = report["books"]
    print(f"books: {b['usage_entries']} usage entries and {b['tokens_spent']} tokens spent for "
          f"{b['usage_requests_sent']} requests; every balance = its ledger's sum = its newest running balance: "
          f"{'consistent' if b['consistent'] else 'NOT CONSISTENT'}")
    load = report["loadavg"]
    print(f"load average (1, 5, 15 min) before: {load['before']}, after: {load['after']} "
          f"on {report['config']['cpus']} CPUs")
    print(f"written: {base.RESULTS / 'usage.json'}")


if __name__ == "__main__":
    sys.exit(main())
