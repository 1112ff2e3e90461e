"""Pictor Billing page benchmark (`make bench`); never part of the test suite. See bench/README.md.

1. Creates a fresh PostgreSQL database (default pictor_bench), migrates it and seeds prices, the
   WELCOME10 coupon and owners with a sandbox card: one with 1 active license (and 5,000 invoices,
   for the Invoices tab), one with N (default 500), one with 1,000 (the Licenses tab).
2. Counts the SQL queries of each page in-process (Django test Client + CaptureQueriesContext, the
   bench URLconf): the authenticated-page baseline (bench/baseline.py), the Order Summary for 1 and
   N active licenses, the Licenses tab (1,000) and the Invoices tab (5,000).
3. Starts gunicorn (bench.baseline:application: the project's URLs plus the baselines; 2 sync
   workers, DEBUG off) on a free loopback port and, in that one server run, loads each page with
   wrk (8 connections, bench/wrk.lua checks every answer), the pages taking turns round by round.
   Reports requests/s, p50 and p99 latency, the client's CPU share, and the workers' peak RSS.
4. Writes its figures (the convention of bench/report.py) to bench/results/pages.json, prints them,
   stops gunicorn and drops the database, also on errors and Ctrl-C. `make bench` then prints
   every script's figures in one table (bench/report.py).

Goals (issue 12): Order Summary >= 0.5x the authenticated page's req/s and <= 3 SQL queries beyond
it for 1 and N licenses; Licenses and Invoices tabs <= 3x its p50 latency; a worker's peak RSS < 150 MB.
"""

import argparse
import datetime
import http.client
import json
import math
import os
import platform
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
RESULTS = BASE / "bench" / "results"
HOST = "127.0.0.1"  # loopback only
SUMMARY_PATH = "/billing/licenses/summary/?period=monthly&tier=pro&quantity=3&coupon=WELCOME10"
SUMMARY_MARKER = b'data-summary="total_due"'  # a rendered summary, not a login redirect or an error
BASELINE_PATH = "/bench/baseline/"  # bench/baseline.py (not imported here: it must load after the settings)
BASELINE_MARKER = 'data-baseline="ok"'
LICENSES_PATH, LICENSES_MARKER = "/billing/licenses/?page=2", 'aria-label="License pages"'
INVOICES_PATH, INVOICES_MARKER = "/billing/invoices/?page=100", 'aria-label="Invoice pages"'
PASSWORD = "bench-password-not-secret"
PRICES = {("basic", "monthly"): "49.00", ("basic", "annual"): "490.00", ("pro", "monthly"): "99.00",
          ("pro", "annual"): "990.00", ("premium", "monthly"): "149.00", ("premium", "annual"): "1490.00"}
RATIO_GOAL = 0.5
EXTRA_QUERIES_GOAL = 3
LATENCY_GOAL = 3.0
RSS_GOAL_MB = 150
TAB_LICENSES, TAB_INVOICES = 1000, 5000
# Plain HTTP on loopback with DEBUG off: no redirect to HTTPS, no HSTS (settings.py's production defaults).
PLAIN_HTTP = {"SECURE_SSL_REDIRECT": "false", "SECURE_COOKIES": "false", "SECURE_HSTS_SECONDS": "0"}
WRK_SCRIPT = BASE / "bench" / "wrk.lua"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"),
                        help="PostgreSQL server URL without a database name (env BENCH_PG_URL)")
    parser.add_argument("--db", default="pictor_bench", help="database to create and drop (must contain 'bench')")
    parser.add_argument("--seconds", type=int, default=4, help="wrk duration per page per round")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured seconds per page first")
    parser.add_argument("--rounds", type=int, default=3,
                        help="the pages take turns in this many rounds (evens out load drift)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections (wrk -c)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--licenses", type=int, default=500, help="active licenses of the large account (N)")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    args = parser.parse_args()
    if "bench" not in args.db:
        parser.error("--db must contain 'bench': the database is dropped at the end")
    if not 1 <= args.clients <= 256 or not 1 <= args.seconds <= 600 or args.licenses < 1 \
            or not 1 <= args.rounds <= 20:
        parser.error("--clients 1-256, --seconds 1-600, --licenses >= 1, --rounds 1-20")
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


def teardown(server, args, *, created: bool) -> None:
    """Stop the benchmark's gunicorn and drop the database it created (unless --keep-db)."""
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


def django_setup() -> None:
    sys.path.insert(0, str(BASE))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pictor_billing.settings")
    import django

    django.setup()


def seed(large: int) -> dict[int, object]:
    """Prices, WELCOME10 and an owner per license count (1, N and the Licenses tab's 1,000), licenses
    bought the ordinary way; the 1-license owner gets the Invoices tab's 5,000 invoices."""
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
    for count in sorted({1, large, TAB_LICENSES}):
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
    invoices_seed(owners[1].account, TAB_INVOICES - 1)  # and its one purchase's
    # Statistics, as a running database has them: just seeded, the tables have none until autovacuum's
    # next pass (a minute or more away), and the planner, guessing 5 invoices, sorted all 5,000 for a page
    # of the Invoices tab (27 ms) instead of walking its index (under 2 ms).
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return owners


def invoices_seed(account, count: int) -> None:
    """`count` paid top-up invoices for the Invoices tab, issued and numbered as the billing run issues a batch."""
    from django.db import transaction

    from invoices.models import Invoice
    from invoices.services import issuing_invoices
    from pictor_billing import clock, pricing

    amount = Decimal("10.00")
    document = {"account": account, "kind": Invoice.TOP_UP, "description": "Token top-up: Starter",
                "lines": [pricing.QuoteLine("item", "Token top-up: Starter", 1, amount, amount)],
                "subtotal": amount, "discount_total": Decimal("0"), "credit_applied": Decimal("0"), "total": amount,
                "status": Invoice.PAID, "issued_on": clock.today(account)}
    with transaction.atomic(), issuing_invoices([document] * count):
        pass


def session_client(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def count_queries(user, path: str, marker: bytes, headers: dict | None = None) -> dict:
    """SQL queries of one request to `path` (after one warm-up request), in-process, with the bench URLconf."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext, override_settings

    client = session_client(user)
    with override_settings(ROOT_URLCONF="bench.baseline"):
        client.get(path, headers=headers)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path, headers=headers)
    if response.status_code != 200 or marker not in response.content:
        raise RuntimeError(f"{path} failed in-process: HTTP {response.status_code}")
    return {"count": len(captured.captured_queries), "sql": [q["sql"] for q in captured.captured_queries]}


# --- server ----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Gunicorn:
    """gunicorn in its own process group, so stopping it never touches anything else."""

    def __init__(self, *, workers: int, env: dict, log_path: Path, threads: int = 1):
        self.port = free_port()
        self.log_path = log_path
        binary = BASE / ".venv" / "bin" / "gunicorn"
        if not binary.exists():
            binary = Path(sys.executable).with_name("gunicorn")
        # The project's WSGI application with the baselines mounted beside every project URL (bench/baseline.py).
        self.command = [str(binary), "bench.baseline:application", "-w", str(workers), "-b", f"{HOST}:{self.port}",
                        "--log-level", "warning"]
        if threads > 1:
            self.command += ["-k", "gthread", "--threads", str(threads)]
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

    def workers_peak_rss_mb(self) -> list[float]:
        """Each worker's peak resident memory so far (VmHWM), in MB."""
        peaks = []
        for pid in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(round(int(line.split()[1]) / 1024, 1))
        return peaks

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

def wrk_load(port: int, path: str, *, seconds: float, connections: int, headers: dict | None = None,
             expect: int = 200, marker: str = "-", usage_tag: str | None = None) -> dict:
    """One wrk run against `path`: its figures (bench/wrk.lua's JSON) and the CPU time wrk itself used.

    Every answer is checked (status `expect`, and `marker` in its body); a bad one fails the run.
    With `usage_tag`, each request is a usage POST with an idempotency key of its own.
    """
    command = ["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
               "--timeout", "10s", "-s", str(WRK_SCRIPT)]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    command += [f"http://{HOST}:{port}{path}", "--", str(expect), marker]
    command += ["usage", usage_tag] if usage_tag else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=BASE)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in done.stdout.splitlines() if line.startswith("WRK_JSON ")]
    if done.returncode or not lines:
        raise RuntimeError(f"wrk failed on {path}: {done.stdout[-500:]} {done.stderr[-500:]}")
    result = json.loads(lines[-1].removeprefix("WRK_JSON "))
    if result["bad"]:
        raise RuntimeError(f"{result['bad']} of {result['requests']} answers from {path} were not good; "
                           f"first: {result['first_bad']}")
    result["client_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def combine(rounds: list[dict]) -> dict:
    """One page's rounds as one figure: req/s over the summed time, the median p50, the worst p99."""
    requests = sum(r["requests"] for r in rounds)
    seconds = sum(r["seconds"] for r in rounds)
    if not requests:
        raise RuntimeError("no answer at all within the rounds: raise --seconds")
    return {
        "requests": requests, "seconds": round(seconds, 3), "rps": round(requests / seconds, 1),
        "p50_ms": round(sorted(r["p50_ms"] for r in rounds)[len(rounds) // 2], 2),
        "p99_ms": round(max(r["p99_ms"] for r in rounds), 2),
        "socket_errors": sum(r["socket_errors"] for r in rounds),
        # wrk's own CPU time over the machine's: the load generator must not be the bottleneck.
        "client_cpu_share": round(sum(r["client_cpu_s"] for r in rounds) / (seconds * os.cpu_count()), 3),
    }


def take_turns(port: int, pages: dict, *, rounds: int, seconds: float, warmup: float, connections: int) -> dict:
    """Load each page (name: wrk_load's keywords) in turn, round by round, so a change in machine load
    hits them alike; `warmup` seconds of each first, unmeasured."""
    if warmup:
        for name, page in pages.items():
            wrk_load(port, **page(f"warm-{name}"), seconds=warmup, connections=connections)
    done = {name: [] for name in pages}
    for round_number in range(rounds):
        for name, page in pages.items():
            done[name].append(wrk_load(port, **page(f"r{round_number}-{name}"), seconds=seconds,
                                       connections=connections))
    return {name: combine(results) for name, results in done.items()}


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def report_header(args, load_before: list[float], **config) -> dict:
    """When, how (the run's settings plus `config`) and on how loaded a machine a benchmark ran."""
    return {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": {**{k: v for k, v in vars(args).items() if k != "pg"}, **config, "load_generator": "wrk",
                   "db_conn_max_age": os.environ.get("DB_CONN_MAX_AGE", "60 (settings default)"), "debug": False,
                   "python": platform.python_version(), "cpus": os.cpu_count()},
        "loadavg": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
    }


def figure(name: str, value, unit: str, *, baseline_name: str | None = None, baseline=None, ratio=None,
           goal: str | None = None, met: bool | None = None) -> dict:
    """One row of `make bench`'s table (bench/report.py's convention)."""
    return {"name": name, "value": value, "unit": unit, "baseline_name": baseline_name, "baseline": baseline,
            "ratio": ratio, "goal": goal, "met": met}


def plain_http_env() -> None:
    """DEBUG off (production settings), but plain HTTP on loopback, for the client and for gunicorn."""
    os.environ.update(DEBUG="0", LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
                      DJANGO_SETTINGS_MODULE="pictor_billing.settings", **PLAIN_HTTP)


# --- main ------------------------------------------------------------------------------------

def main() -> int:
    args = parse_args()
    os.environ["DATABASE_URL"] = f"{args.pg.rstrip('/')}/{args.db}"
    plain_http_env()
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

        print(f"migrating and seeding (owners with 1, {args.licenses} and {TAB_LICENSES} active licenses, "
              f"{TAB_INVOICES} invoices) ...", flush=True)
        owners = seed(args.licenses)
        htmx = {"HX-Request": "true"}
        # name: (the owner, by active licenses; path; what every good answer contains; headers)
        page_users = {"baseline": (1, BASELINE_PATH, BASELINE_MARKER, {}),
                      "summary_1": (1, SUMMARY_PATH, SUMMARY_MARKER.decode(), htmx),
                      f"summary_{args.licenses}": (args.licenses, SUMMARY_PATH, SUMMARY_MARKER.decode(), htmx),
                      "licenses_tab": (TAB_LICENSES, LICENSES_PATH, LICENSES_MARKER, {}),
                      "invoices_tab": (1, INVOICES_PATH, INVOICES_MARKER, {})}
        queries = {name: count_queries(owners[owner], path, marker.encode(), headers)
                   for name, (owner, path, marker, headers) in page_users.items()}
        cookies = {count: session_client(user).cookies[settings.SESSION_COOKIE_NAME].value
                   for count, user in owners.items()}
        connections.close_all()

        server = Gunicorn(workers=args.workers, env=dict(os.environ), log_path=RESULTS / "gunicorn.log")
        server.wait_ready()
        print(f"gunicorn on {HOST}:{server.port}, {args.workers} workers; wrk, {args.clients} connections, "
              f"{args.rounds} rounds of {args.seconds:g} s per page ...", flush=True)

        def page(owner, path, marker, headers):
            cookie = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookies[owner]}"}
            return lambda tag: {"path": path, "marker": marker, "headers": {**cookie, **headers}}

        pages = {name: page(*spec) for name, spec in page_users.items()}
        http = take_turns(server.port, pages, rounds=args.rounds, seconds=args.seconds, warmup=args.warmup,
                          connections=args.clients)
        peaks = server.workers_peak_rss_mb()
        server.stop()
        if server.log_tail().strip():
            print(f"gunicorn log ({RESULTS / 'gunicorn.log'}):\n{server.log_tail()}", file=sys.stderr)
        server = None

        report = {**report_header(args, load_before, summary_path=SUMMARY_PATH),
                  "figures": page_figures(http, queries, peaks, args),
                  "http": http, "queries": queries, "workers_peak_rss_mb": peaks}
        (RESULTS / "pages.json").write_text(json.dumps(report, indent=2) + "\n")
        from report import print_table  # bench/report.py

        print_table(report["figures"], title="Pages (bench/run.py)", loadavg=report["loadavg"])
        print(f"written: {RESULTS / 'pages.json'}")
        return 0
    finally:
        teardown(server, args, created=created)


def page_figures(http: dict, queries: dict, peaks: list[float], args) -> list[dict]:
    """The pages' figures against the authenticated-page baseline measured in the same server run."""
    base_page, base_queries = http["baseline"], queries["baseline"]["count"]
    rows = [
        figure("authenticated page (baseline)", base_page["rps"], "req/s"),
        figure("authenticated page p50 / p99 (baseline)", f"{base_page['p50_ms']} / {base_page['p99_ms']}", "ms"),
        figure("authenticated page SQL queries (baseline)", base_queries, "queries"),
    ]
    for count in sorted({1, args.licenses}):
        summary = http[f"summary_{count}"]
        ratio = round(summary["rps"] / base_page["rps"], 2)
        extra = queries[f"summary_{count}"]["count"] - base_queries
        rows += [
            figure(f"Order Summary, {count} active license{'s' if count > 1 else ''}", summary["rps"], "req/s",
                   baseline_name="authenticated page", baseline=base_page["rps"], ratio=ratio,
                   goal=f"≥ {RATIO_GOAL}× baseline", met=ratio >= RATIO_GOAL),
            figure(f"Order Summary, {count} active, p99 at {args.clients} clients", summary["p99_ms"], "ms",
                   baseline_name="authenticated page p99", baseline=base_page["p99_ms"],
                   ratio=round(summary["p99_ms"] / base_page["p99_ms"], 2), goal="reported"),
            figure(f"Order Summary, {count} active: SQL queries beyond baseline", extra, "queries",
                   baseline_name="authenticated page", baseline=base_queries,
                   goal=f"≤ {EXTRA_QUERIES_GOAL}", met=extra <= EXTRA_QUERIES_GOAL),
        ]
    for name, label in (("licenses_tab", f"Licenses tab, {TAB_LICENSES:,} licenses"),
                        ("invoices_tab", f"Invoices tab, {TAB_INVOICES:,} invoices")):
        ratio = round(http[name]["p50_ms"] / base_page["p50_ms"], 2)
        rows += [
            figure(f"{label}: p50", http[name]["p50_ms"], "ms", baseline_name="authenticated page p50",
                   baseline=base_page["p50_ms"], ratio=ratio, goal=f"≤ {LATENCY_GOAL}× baseline",
                   met=ratio <= LATENCY_GOAL),
            figure(f"{label}: SQL queries", queries[name]["count"], "queries",
                   baseline_name="authenticated page", baseline=base_queries,
                   goal="constant (tests assert it)"),
        ]
    rows += [
        figure("wrk's CPU share (pages, worst)", max(r["client_cpu_share"] for r in http.values()), "of all CPUs",
               goal="the client is not the bottleneck"),
        figure("gunicorn worker peak RSS (pages)", max(peaks), "MB", goal=f"< {RSS_GOAL_MB} MB",
               met=max(peaks) < RSS_GOAL_MB),
    ]
    return rows


if __name__ == "__main__":
    sys.exit(main())
