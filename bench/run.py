"""Pictor Billing benchmark (`make bench`); never part of the test suite. See bench/README.md.

1. Creates a fresh PostgreSQL database (default pictor_bench), migrates it and seeds prices, the
   WELCOME10 coupon and two owners with a sandbox card: one with 1 active license, one with N
   (default 500).
2. Counts the SQL queries of one Order Summary request for each owner, in-process (Django test
   Client + CaptureQueriesContext against the bench database). Goal: the same count.
3. Starts gunicorn (2 sync workers, DEBUG off) on a free loopback port and, in that one server
   run, sends a fixed number of requests from K client threads (http.client, keep-alive when
   the server allows it) to GET /healthz (the bare Django baseline) and to the Order Summary
   fragment as each owner. Reports requests/s, p50 and p99 latency and ratio = summary rps /
   baseline rps (goal >= 0.5).
4. Prints a table, writes bench/results/latest.json, stops gunicorn and drops the database,
   also on errors and Ctrl-C.
"""

import argparse
import datetime
import http.client
import json
import math
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
RESULTS = BASE / "bench" / "results"
HOST = "127.0.0.1"  # loopback only
SUMMARY_PATH = "/billing/licenses/summary/?period=monthly&tier=pro&quantity=3&coupon=WELCOME10"
SUMMARY_MARKER = b'data-summary="total_due"'  # a rendered summary, not a login redirect or an error
PASSWORD = "bench-password-not-secret"
PRICES = {("basic", "monthly"): "49.00", ("basic", "annual"): "490.00", ("pro", "monthly"): "99.00",
          ("pro", "annual"): "990.00", ("premium", "monthly"): "149.00", ("premium", "annual"): "1490.00"}
RATIO_GOAL = 0.5


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"),
                        help="PostgreSQL server URL without a database name (env BENCH_PG_URL)")
    parser.add_argument("--db", default="pictor_bench", help="database to create and drop (must contain 'bench')")
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per endpoint")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured requests per endpoint first")
    parser.add_argument("--rounds", type=int, default=4,
                        help="the endpoints take turns in this many rounds (evens out load drift)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads (K)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--licenses", type=int, default=500, help="active licenses of the large account (N)")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    args = parser.parse_args()
    if "bench" not in args.db:
        parser.error("--db must contain 'bench': the database is dropped at the end")
    if not 1 <= args.clients <= 64 or not 1 <= args.requests <= 100_000 or args.licenses < 1 \
            or not 1 <= args.rounds <= args.requests:
        parser.error("--clients 1-64, --requests 1-100000, --licenses >= 1, --rounds 1..requests")
    return args


# --- database --------------------------------------------------------------------------------

def admin_connect(pg: str):
    import psycopg

    return psycopg.connect(f"{pg.rstrip('/')}/postgres", autocommit=True)


def database_create(pg: str, name: str) -> None:
    from psycopg import sql

    with admin_connect(pg) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def database_drop(pg: str, name: str) -> None:
    from psycopg import sql

    with admin_connect(pg) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def django_setup() -> None:
    sys.path.insert(0, str(BASE))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pictor_billing.settings")
    import django

    django.setup()


def seed(large: int) -> dict[int, object]:
    """Prices, WELCOME10 and an owner per license count; licenses bought the ordinary way."""
    from django.core.management import call_command

    from billing.purchase import license_purchase
    from billing.signup import account_signup
    from licenses.models import Coupon, License, PriceListEntry
    from payments.services import card_add

    call_command("migrate", interactive=False, verbosity=0)
    for (tier, period), price in PRICES.items():
        PriceListEntry.objects.create(tier=tier, period=period, effective_from=datetime.date(2020, 1, 1),
                                      unit_price=Decimal(price))
    Coupon.objects.create(code="WELCOME10", kind=Coupon.PERCENT, value=Decimal("10"), combines_with_volume=True)
    owners = {}
    for count in sorted({1, large}):
        user = account_signup(company_name=f"Bench {count} Ltd", email=f"bench{count}@example.com",
                              password=PASSWORD)
        card_add(account=user.account, number="4242424242424242", exp_month=12,
                 exp_year=datetime.date.today().year + 3, cvc="123")
        left = count
        while left:
            quantity = min(left, 100)  # the purchase form's maximum
            license_purchase(account=user.account, user=user, token=secrets.token_hex(16), tier="pro",
                             period="monthly", quantity=quantity)
            left -= quantity
        assert License.objects.filter(account=user.account).active().count() == count
        owners[count] = user
    return owners


def session_client(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def count_queries(user) -> dict:
    """SQL queries of one Order Summary request (after one warm-up request), in-process."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = session_client(user)
    client.get(SUMMARY_PATH, HTTP_HX_REQUEST="true")
    with CaptureQueriesContext(connection) as captured:
        response = client.get(SUMMARY_PATH, HTTP_HX_REQUEST="true")
    if response.status_code != 200 or SUMMARY_MARKER not in response.content:
        raise RuntimeError(f"summary request failed in-process: HTTP {response.status_code}")
    return {"count": len(captured.captured_queries), "sql": [q["sql"] for q in captured.captured_queries]}


# --- server ----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Gunicorn:
    """gunicorn in its own process group, so stopping it never touches anything else."""

    def __init__(self, *, workers: int, env: dict, log_path: Path):
        self.port = free_port()
        self.log_path = log_path
        binary = BASE / ".venv" / "bin" / "gunicorn"
        if not binary.exists():
            binary = Path(sys.executable).with_name("gunicorn")
        self.command = [str(binary), "pictor_billing.wsgi", "-w", str(workers), "-b", f"{HOST}:{self.port}",
                        "--log-level", "warning"]
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.command, cwd=BASE, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer /healthz within {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # the master stops its workers gracefully
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)  # its own group (start_new_session)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        self.log.close()


# --- load ------------------------------------------------------------------------------------

def load(port: int, path: str, headers: dict | list[dict], total: int, clients: int, *, method: str = "GET",
         body=None, check=None) -> dict:
    """`total` requests from `clients` threads, each with one keep-alive connection, started together.

    Thread i sends headers[i % len(headers)] (or `headers` itself when it is one
    dict), `body(tag)` as the request body when given, and `check(status, content)`
    decides whether an answer counts as a success (default: a 200 whose page
    is the summary, or /healthz).
    """
    headers = headers if isinstance(headers, list) else [headers]
    check = check or (lambda status, content: status == 200 and (path == "/healthz" or SUMMARY_MARKER in content))
    quotas = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    connects = [0] * clients
    started: list[float] = []
    barrier = threading.Barrier(clients, action=lambda: started.append(time.perf_counter()))

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        mine = latencies[index]
        try:
            barrier.wait()
            for _ in range(quotas[index]):
                if conn.sock is None:
                    connects[index] += 1
                payload = body(f"t{index}") if body else None
                t0 = time.perf_counter()
                conn.request(method, path, body=payload, headers=headers[index % len(headers)])
                response = conn.getresponse()
                content = response.read()
                mine.append(time.perf_counter() - t0)
                if not check(response.status, content):
                    failures.append(f"HTTP {response.status}: {content[:160]!r}")
        except Exception as error:  # noqa: BLE001 - reported by the caller
            failures.append(repr(error))
            barrier.abort()
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started[0] if started else float("nan")
    if failures:
        raise RuntimeError(f"{len(failures)} failed requests to {path}; first: {failures[0]}")
    return {"latencies": [lat for per_thread in latencies for lat in per_thread], "seconds": elapsed,
            "connections_opened": sum(connects)}


def report_header(args, load_before: list[float], **config) -> dict:
    """When, how (the run's settings plus `config`) and on how loaded a machine a benchmark ran."""
    return {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": {"requests": args.requests, "warmup": args.warmup, "clients": args.clients,
                   "workers": args.workers, "rounds": args.rounds, **config,
                   "db_conn_max_age": os.environ.get("DB_CONN_MAX_AGE", "60 (settings default)"), "debug": False,
                   "python": platform.python_version(), "cpus": os.cpu_count()},
        "loadavg": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
    }


def summarize(rounds: list[dict]) -> dict:
    """Requests/s over the summed wall time of all rounds; percentiles over every request."""
    ordered = sorted(lat for r in rounds for lat in r["latencies"])
    seconds = sum(r["seconds"] for r in rounds)
    return {
        "requests": len(ordered),
        "seconds": round(seconds, 3),
        "rps": round(len(ordered) / seconds, 1),
        "p50_ms": round(percentile(ordered, 50) * 1000, 2),
        "p99_ms": round(percentile(ordered, 99) * 1000, 2),
        "connections_opened": sum(r["connections_opened"] for r in rounds),
    }


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# --- main ------------------------------------------------------------------------------------

def main() -> int:
    args = parse_args()
    db_url = f"{args.pg.rstrip('/')}/{args.db}"
    os.environ.update(DATABASE_URL=db_url, DEBUG="0", LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
                      DJANGO_SETTINGS_MODULE="pictor_billing.settings")
    RESULTS.mkdir(parents=True, exist_ok=True)
    # SIGTERM (and SIGHUP) unwind through `finally` like Ctrl-C does, so nothing is left behind.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))

    server = None
    created = False
    load_before = [round(x, 2) for x in os.getloadavg()]
    try:
        print(f"creating database {args.db} ...", flush=True)
        database_create(args.pg, args.db)
        created = True
        django_setup()
        from django.conf import settings
        from django.db import connections

        print(f"migrating and seeding (owners with 1 and {args.licenses} active licenses) ...", flush=True)
        owners = seed(args.licenses)
        queries = {str(count): count_queries(user) for count, user in owners.items()}
        cookies = {count: session_client(user).cookies[settings.SESSION_COOKIE_NAME].value
                   for count, user in owners.items()}
        connections.close_all()

        env = dict(os.environ)
        server = Gunicorn(workers=args.workers, env=env, log_path=RESULTS / "gunicorn.log")
        server.wait_ready()
        print(f"gunicorn on {HOST}:{server.port}, {args.workers} workers; {args.requests} requests per endpoint "
              f"from {args.clients} client threads ...", flush=True)
        endpoints = {"healthz": ("/healthz", {})}
        for count, cookie in cookies.items():
            endpoints[f"summary_{count}"] = (SUMMARY_PATH, {
                "Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}", "HX-Request": "true"})
        for path, headers in endpoints.values():
            if args.warmup:
                load(server.port, path, headers, args.warmup, args.clients)
        # The endpoints take turns, round by round, so a change in machine load hits them alike.
        per_round = [args.requests // args.rounds + (1 if i < args.requests % args.rounds else 0)
                     for i in range(args.rounds)]
        rounds = {name: [] for name in endpoints}
        for count in per_round:
            for name, (path, headers) in endpoints.items():
                rounds[name].append(load(server.port, path, headers, count, args.clients))
        http_results = {name: summarize(done) for name, done in rounds.items()}
        server.stop()
        if server.log_tail().strip():
            print(f"gunicorn log ({RESULTS / 'gunicorn.log'}):\n{server.log_tail()}", file=sys.stderr)
        server = None

        baseline = http_results["healthz"]["rps"]
        ratios = {name: round(result["rps"] / baseline, 3)
                  for name, result in http_results.items() if name != "healthz"}
        counts = {count: q["count"] for count, q in queries.items()}
        report = {
            **report_header(args, load_before, licenses=args.licenses, summary_path=SUMMARY_PATH),
            "http": http_results,
            "ratio": ratios,
            "ratio_goal": RATIO_GOAL,
            "ratio_goal_met": all(r >= RATIO_GOAL for r in ratios.values()),
            "queries": queries,
            "queries_goal_met": len(set(counts.values())) == 1,
        }
        (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
        print_table(report)
        return 0
    finally:
        if server is not None:
            server.stop()
        if created and not args.keep_db:
            try:
                from django.db import connections

                connections.close_all()
            except Exception:  # noqa: BLE001 - Django may not be set up yet
                pass
            database_drop(args.pg, args.db)
            print(f"dropped database {args.db}", flush=True)


def print_table(report: dict) -> None:
    print()
    print(f"{'endpoint':<34}{'requests':>9}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}")
    for name, result in report["http"].items():
        label = "GET /healthz (baseline)" if name == "healthz" else \
            f"GET summary ({name.split('_')[1]} active licenses)"
        ratio = f"{report['ratio'][name]:.2f}" if name in report["ratio"] else "1.00"
        print(f"{label:<34}{result['requests']:>9}{result['rps']:>10.1f}{result['p50_ms']:>9.2f}"
              f"{result['p99_ms']:>9.2f}{ratio:>8}")
    print(f"ratio goal >= {report['ratio_goal']}: {'met' if report['ratio_goal_met'] else 'NOT met'}")
    counts = ", ".join(f"{n} active: {q['count']}" for n, q in report["queries"].items())
    print(f"SQL queries per summary request: {counts} "
          f"(goal: the same; {'met' if report['queries_goal_met'] else 'NOT met'})")
    load = report["loadavg"]
    print(f"load average (1, 5, 15 min) before: {load['before']}, after: {load['after']} "
          f"on {report['config']['cpus']} CPUs")
    print(f"written: {RESULTS / 'latest.json'}")


if __name__ == "__main__":
    sys.exit(main())
