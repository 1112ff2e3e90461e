"""Device usage API benchmark (`make bench`, after bench/run.py); never part of the test suite.

1. Creates a fresh PostgreSQL database (default pictor_bench_usage), migrates it and seeds one
   account with a large token balance and a device API key: every debit queues on that account's
   row lock (the worst case: one busy event's booths).
2. Counts the SQL statements of one POST /api/v1/usage and of the authenticated API call baseline
   (bench/baseline.py: the same key check and one SELECT), in-process, outside any test transaction;
   then VACUUM ANALYZE and a CHECKPOINT, so the load starts on a settled database.
3. Starts gunicorn (bench.baseline:application, DEBUG off, free loopback port) and, in that one
   server run, loads with wrk (8 connections; bench/wrk.lua checks every answer): POST
   /api/v1/usage (1 AI image, an idempotency key of its own per request, so every request really
   debits) and GET /bench/api/ (the baseline), taking turns round by round. Reports requests/s,
   p50 and p99 latency, wrk's CPU share, the workers' peak RSS.
4. Checks the books afterwards: one ledger entry, one remembered request and one token per debit,
   at least as many debits as 201s counted, each balance equal to its ledger's sum and to its newest
   running balance (exit status 1 if not).
5. Writes its figures to bench/results/usage.json (bench/report.py's convention), prints them,
   stops gunicorn and drops the database, also on errors and Ctrl-C.

Goals (issue 12): >= 0.5x the authenticated API call's req/s, <= 3 SQL statements per debit beyond it.
"""

import argparse
import json
import os
import signal
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as base  # noqa: E402  (bench/run.py: database, gunicorn, wrk and figure helpers)
from report import print_table  # noqa: E402

HOST = base.HOST
USAGE_PATH = "/api/v1/usage"
API_BASELINE_PATH = "/bench/api/"  # bench/baseline.py
RATIO_GOAL = 0.5
EXTRA_STATEMENTS_GOAL = 3
START_BALANCE = 10_000_000


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"),
                        help="PostgreSQL server URL without a database name (env BENCH_PG_URL)")
    parser.add_argument("--db", default="pictor_bench_usage", help="database to create and drop (must contain 'bench')")
    parser.add_argument("--seconds", type=int, default=4, help="wrk duration per endpoint per round")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured seconds per endpoint first")
    parser.add_argument("--rounds", type=int, default=3, help="the endpoints take turns in this many rounds")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections (wrk -c)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker (gthread when > 1)")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    args = parser.parse_args()
    if "bench" not in args.db:
        parser.error("--db must contain 'bench': the database is dropped at the end")
    if not 1 <= args.clients <= 256 or not 1 <= args.seconds <= 600 or not 1 <= args.rounds <= 20:
        parser.error("--clients 1-256, --seconds 1-600, --rounds 1-20")
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


def count_statements(key: str) -> dict:
    """SQL statements of one usage debit and of one API baseline call (after a warm-up of each), in-process.

    Outside any test transaction, as in production: there the debit is one statement and its own
    transaction (no BEGIN, COMMIT or SAVEPOINT; Django logs them too when it sends them).
    """
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings

    client = Client()
    headers = {"Authorization": f"Bearer {key}"}
    counted = {}
    with override_settings(ROOT_URLCONF="bench.baseline"):
        for name, call, good in (
                ("usage", lambda: client.post(USAGE_PATH, usage_body("count"), content_type="application/json",
                                              headers=headers), 201),
                ("api_baseline", lambda: client.get(API_BASELINE_PATH, headers=headers), 200)):
            call()
            with CaptureQueriesContext(connection) as captured:
                response = call()
            if response.status_code != good:
                raise RuntimeError(f"{name} failed in-process: HTTP {response.status_code} {response.content[:200]!r}")
            statements = [q["sql"] for q in captured.captured_queries]  # one statement per round trip
            counted[name] = {"count": len(statements), "sql": statements}
    return counted


def settle() -> None:
    """Statistics, as a running database has them (VACUUM ANALYZE), then a CHECKPOINT: the pages the
    seeding and the benchmark before this one left dirty are written now, not in the middle of the load,
    where their writes would queue with every debit's WAL flush (the baseline writes nothing)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        try:
            cursor.execute("CHECKPOINT")  # a superuser's or pg_checkpoint's: without it, the load runs as is
        except Exception as error:  # noqa: BLE001 - any refusal: measure without it, and say so
            print(f"CHECKPOINT refused ({error}); measuring without it", file=sys.stderr)


def books(accounts: list, answered: int) -> dict:
    """The ledgers after the run: one usage entry, one remembered request and one token per debit, at
    least one debit per 201 counted (wrk stops with requests in flight), and balances that add up."""
    from tokens.models import TokenEntry, UsageRequest
    from tokens.services import token_balance

    usage = TokenEntry.objects.filter(account__in=accounts, kind=TokenEntry.USAGE).count()
    remembered = UsageRequest.objects.filter(account__in=accounts).count()
    balances_add_up = True
    spent = 0
    for account in accounts:
        entries = TokenEntry.objects.filter(account=account)
        balance, ledger_sum = token_balance(account), entries.balance()
        newest = entries.order_by("-id").values_list("balance_after", flat=True).first()
        balances_add_up &= balance == ledger_sum == newest
        spent += START_BALANCE - balance
    ok = usage == remembered == spent >= answered and balances_add_up
    return {"usage_entries": usage, "usage_requests_remembered": remembered, "tokens_spent": spent,
            "answered_201": answered, "balances_equal_ledger_sums": balances_add_up, "consistent": ok}


def main() -> int:
    args = parse_args()
    os.environ["DATABASE_URL"] = f"{args.pg.rstrip('/')}/{args.db}"
    base.plain_http_env()
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

        print(f"migrating and seeding (an account with {START_BALANCE:,} tokens and a device key) ...", flush=True)
        account, key = seed(1)[0]
        statements = count_statements(key)
        settle()
        connections.close_all()

        server = base.Gunicorn(workers=args.workers, threads=args.threads, env=dict(os.environ),
                               log_path=base.RESULTS / "gunicorn-usage.log")
        server.wait_ready()
        print(f"gunicorn on {HOST}:{server.port}, {args.workers} workers; wrk, {args.clients} connections, "
              f"{args.rounds} rounds of {args.seconds} s per endpoint ...", flush=True)
        auth = {"Authorization": f"Bearer {key}"}
        endpoints = {
            "api_baseline": lambda tag: {"path": API_BASELINE_PATH, "headers": auth, "marker": '"baseline": "ok"'},
            "usage": lambda tag: {"path": USAGE_PATH, "headers": auth, "expect": 201, "marker": '"debited"',
                                  "usage_tag": f"{tag}-{uuid.uuid4().hex[:8]}"},
        }
        http = base.take_turns(server.port, endpoints, rounds=args.rounds, seconds=args.seconds,
                               warmup=args.warmup, connections=args.clients)
        peaks = server.workers_peak_rss_mb()
        server.stop()
        if server.log_tail().strip():
            print(f"gunicorn log ({base.RESULTS / 'gunicorn-usage.log'}):\n{server.log_tail()}", file=sys.stderr)
        server = None

        # The 201s wrk counted; the warm-up's and count_statements' debits are on the books too.
        checked = books([account], http["usage"]["requests"])
        report = {**base.report_header(args, load_before, usage_path=USAGE_PATH),
                  "figures": usage_figures(http, statements, peaks, checked, args),
                  "http": http, "statements": statements, "books": checked, "workers_peak_rss_mb": peaks}
        (base.RESULTS / "usage.json").write_text(json.dumps(report, indent=2) + "\n")
        print_table(report["figures"], title="Usage API (bench/usage.py)", loadavg=report["loadavg"])
        print(f"written: {base.RESULTS / 'usage.json'}")
        return 0 if checked["consistent"] else 1
    finally:
        base.teardown(server, args, created=created)


def usage_figures(http: dict, statements: dict, peaks: list[float], checked: dict, args) -> list[dict]:
    """The usage API's figures against the authenticated API call measured in the same server run."""
    api, usage = http["api_baseline"], http["usage"]
    ratio = round(usage["rps"] / api["rps"], 2)
    extra = statements["usage"]["count"] - statements["api_baseline"]["count"]
    return [
        base.figure("authenticated API call (baseline)", api["rps"], "req/s"),
        base.figure("authenticated API call SQL statements (baseline)", statements["api_baseline"]["count"],
                    "statements"),
        base.figure("POST /api/v1/usage (one account)", usage["rps"], "req/s",
                    baseline_name="authenticated API call", baseline=api["rps"], ratio=ratio,
                    goal=f"≥ {RATIO_GOAL}× baseline", met=ratio >= RATIO_GOAL),
        base.figure(f"POST /api/v1/usage p50 / p99 at {args.clients} clients", f"{usage['p50_ms']} / {usage['p99_ms']}",
                    "ms", baseline_name="API call p50 / p99", baseline=f"{api['p50_ms']} / {api['p99_ms']}",
                    goal="reported"),
        base.figure("POST /api/v1/usage: SQL statements per debit beyond baseline", extra, "statements",
                    baseline_name="authenticated API call", baseline=statements["api_baseline"]["count"],
                    goal=f"≤ {EXTRA_STATEMENTS_GOAL}", met=extra <= EXTRA_STATEMENTS_GOAL),
        base.figure("usage books after the run (ledger = balance, one debit per request)",
                    "consistent" if checked["consistent"] else "NOT CONSISTENT", "", goal="consistent",
                    met=checked["consistent"]),
        base.figure("wrk's CPU share (usage, worst)", max(r["client_cpu_share"] for r in http.values()),
                    "of all CPUs", goal="the client is not the bottleneck"),
        base.figure("gunicorn worker peak RSS (usage API)", max(peaks), "MB", goal=f"< {base.RSS_GOAL_MB} MB",
                    met=max(peaks) < base.RSS_GOAL_MB),
    ]


if __name__ == "__main__":
    sys.exit(main())
