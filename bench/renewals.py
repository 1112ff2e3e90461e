"""The billing run on PostgreSQL (`make bench`); never part of the test suite. See bench/README.md.

1. Creates a fresh database (default pictor_bench_renewals) and seeds --accounts accounts (default
   20,000) with --licenses-per-account licenses each (default 5: 100,000), all due on one billing
   date (today, or the 28th when today is later in the month), in four purchase patterns (monthly
   and annual, three tiers, second purchases that move the first licenses into the 10% bracket).
   One template account per pattern is bought through the real services (signup, card_add,
   license_purchase, at a clock set back a month or a year); every other account is a copy of a
   template written with COPY: the same rows (account, owner, token grant, card, renewal groups,
   purchases, invoices with lines and status history, licenses and their terms, payment attempts,
   credit entries) with fresh ids, names, tokens, keys and gap-free invoice numbers, and the
   purchase payments in the sandbox's books (not their idempotency records: nothing sends those
   keys again). The seeded database and the sandbox file are kept as
   a template; every measurement below starts from a fresh copy of both.
2. The query log of one batch of --accounts-per-task accounts (every pattern in it) through the real
   renewal task (which sends its batch's charges), in-process.
3. The floor: the same rows the run writes per account (renewal invoice, lines, status history,
   renewal, license updates, terms, payment attempt, credit applied, invoice number), written in one
   transaction per account with plain SQL (psycopg, one connection), as the charge left them.
4. The real billing run: N `manage.py db_worker` processes (1, then 2) on the django-tasks-db queue,
   started and idle; one scheduler pass (`billing.scheduler.schedule_pass`, in-process) enqueues
   `renew_accounts_task` per --accounts-per-task accounts (BILLING_ACCOUNTS_PER_TASK, default 100);
   each prepares its accounts 50 at a time and sends each group's charges from the charge step's pool
   (BILLING_CHARGE_CONCURRENCY threads, default 16) while it prepares the next. Timed from the pass's start until every
   account has its Renewal and no renewal charge is in flight (renewals/s); also when every
   Renewal existed and when the queue was empty.
5. The run again with the sandbox answering each call after --latency-ms (default 200) on
   --latency-workers workers (default 2), against the 0 ms run with as many workers.
   --analyze-queue ANALYZEs the task table right after the scheduler pass (a what-if: with the
   statistics of an empty table the workers' claim query reads and sorts every waiting task).
6. After each run the books are checked: one renewal per account, every renewal paid, invoice
   numbers gap-free per year, the sandbox holding exactly the charges the attempts record and
   the paid totals. Goals: run ≤ 3× the floor (1 worker); 200 ms ≤ 2× 0 ms.
Writes bench/results/renewals.json (git-ignored; its "figures" list is what bench/report.py shows)
and the workers' logs beside it; the databases,
the sandbox files and the workers go at the end, also on errors, Ctrl-C and SIGTERM.
"""

import argparse
import datetime
import json
import os
import platform
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as base  # noqa: E402  (bench/run.py: database and environment helpers)

FLOOR_GOAL = 3.0  # run time / floor time, 1 worker
LATENCY_GOAL = 2.0  # run time at --latency-ms / run time at 0 ms
IN_FLIGHT = ("pending", "requires_action", "authorized", "unknown")  # PaymentAttempt.IN_FLIGHT
TASKS_TABLE = "django_tasks_database_dbtaskresult"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"),
                        help="PostgreSQL server URL without a database name (env BENCH_PG_URL)")
    parser.add_argument("--db", default="pictor_bench_renewals",
                        help="database to create and drop (must contain 'bench'); its template is <db>_seed")
    parser.add_argument("--accounts", type=int, default=20_000, help="accounts, all due on one day")
    parser.add_argument("--licenses-per-account", type=int, default=5, help="licenses of each account")
    parser.add_argument("--latency-ms", type=int, default=200, help="the sandbox's delay per call in the slow run")
    parser.add_argument("--latency-workers", type=int, default=2, help="workers of the slow run (and its 0 ms twin)")
    parser.add_argument("--charge-concurrency", type=int, default=16, help="BILLING_CHARGE_CONCURRENCY")
    parser.add_argument("--accounts-per-task", type=int, default=100,
                        help="BILLING_ACCOUNTS_PER_TASK: accounts the scheduler puts in one renewal task")
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between two looks at the database")
    parser.add_argument("--stall", type=float, default=120, help="give up when nothing moves this many seconds")
    parser.add_argument("--analyze-queue", action="store_true",
                        help="ANALYZE the task table right after the scheduler pass (what-if: see bench/README.md)")
    parser.add_argument("--no-runs", action="store_true", help="seed, query log and floor only (no workers)")
    parser.add_argument("--keep-db", action="store_true", help="keep the seeded template database <db>_seed")
    args = parser.parse_args()
    if "bench" not in args.db:
        parser.error("--db must contain 'bench': the database is dropped at the end")
    if args.accounts < 10 or not 1 <= args.licenses_per_account <= 100 or args.latency_workers < 1 \
            or args.charge_concurrency < 1 or args.latency_ms < 0 or args.accounts_per_task < 1:
        parser.error("--accounts >= 10, --licenses-per-account 1-100, --latency-workers >= 1, "
                     "--charge-concurrency >= 1, --latency-ms >= 0, --accounts-per-task >= 1")
    return args


# --- the billing date and the purchase patterns ------------------------------------------------------

def billing_date(today: datetime.date) -> datetime.date:
    """The day everything falls due: today, or the 28th when today is later (every month has a 28th,
    so licenses bought a month or a year earlier fall due on exactly this date)."""
    return today if today.day <= 28 else today.replace(day=28)


def patterns(per_account: int) -> dict[str, list[tuple[str, str, str, int]]]:
    """Purchase patterns, oldest purchase first: (bought a "year" or a "month" before the billing date,
    tier, period, quantity). With 5 licenses each account reaches the 10% bracket; the second
    purchases of the mixed patterns move the first licenses into it (a volume-adjustment credit,
    which that purchase applies at once, so the renewals start from a zero credit balance)."""
    half, annual = (per_account + 1) // 2, per_account // 2
    chosen = {
        "pro monthly": [("month", "pro", "monthly", per_account)],
        "basic then premium monthly": [("month", "basic", "monthly", half),
                                       ("month", "premium", "monthly", per_account - half)],
        "premium annual": [("year", "premium", "annual", per_account)],
        "pro annual, then basic monthly": [("year", "pro", "annual", annual),
                                           ("month", "basic", "monthly", per_account - annual)],
    }
    return {name: [p for p in purchases if p[3]] for name, purchases in chosen.items()}


# --- seeding: templates bought for real, copies written with COPY --------------------------------------

def seed_templates(due: datetime.date, per_account: int) -> list[int]:
    """One account per pattern, bought through the real services at a clock set back; their ids."""
    from accounts.models import Account
    from billing.purchase import license_purchase
    from billing.signup import account_signup
    from licenses.models import PriceListEntry
    from payments.services import card_add
    from pictor_billing.pricing.calendar import add_years

    for (tier, period), price in base.PRICES.items():
        PriceListEntry.objects.create(tier=tier, period=period, effective_from=datetime.date(2020, 1, 1),
                                      unit_price=Decimal(price))
    moments = {"year": add_years(due, -1), "month": due.replace(year=due.year - (due.month == 1),
                                                                month=(due.month - 2) % 12 + 1)}
    moments = {when: datetime.datetime.combine(day, datetime.time(10), tzinfo=datetime.UTC)
               for when, day in moments.items()}
    ids = []
    for number, (name, purchases) in enumerate(patterns(per_account).items(), start=1):
        user = account_signup(company_name=f"Bench template {number} ({name})", email=f"template{number}@example.com",
                              password=base.PASSWORD)
        account = user.account
        for index, (when, tier, period, quantity) in enumerate(purchases):
            Account.objects.filter(pk=account.pk).update(clock_frozen_at=moments[when])
            account.clock_frozen_at = moments[when]  # as a test clock stands it (tests/helpers.clock_set)
            if index == 0:
                card_add(account=account, number="4242424242424242", exp_month=12, exp_year=due.year + 3, cvc="123")
            license_purchase(account=account, user=user, token=uuid.uuid4().hex, tier=tier, period=period,
                             quantity=quantity)
        Account.objects.filter(pk=account.pk).update(clock_frozen_at=None)
        ids.append(account.pk)
    return ids


def account_models() -> list:
    """Every model whose rows belong to an account: Account, and each model with a foreign key to one
    of these (parents first)."""
    from django.apps import apps
    from django.db.models import ForeignKey

    from accounts.models import Account

    chosen = [Account]
    grown = True
    while grown:
        grown = False
        for model in apps.get_models():
            if model not in chosen and any(isinstance(f, ForeignKey) and f.related_model in chosen
                                           for f in model._meta.concrete_fields):
                chosen.append(model)
                grown = True
    return chosen


def quoted(columns: list[str]) -> str:
    return ", ".join(f'"{column}"' for column in columns)


class Copier:
    """Copies of the template accounts: every row of every account model, with fresh ids and
    foreign keys pointing into the copy, and what must differ from account to account rewritten."""

    def __init__(self, conn, templates: list[int], sandbox_path: str):
        from django.db import models as m

        self.conn, self.templates = conn, templates
        self.models = account_models()
        self.columns, self.fks, self.rows, self.next_id = {}, {}, {}, {}
        for model in self.models:
            assert isinstance(model._meta.pk, m.AutoField | m.BigAutoField), model
            self.columns[model] = [f.column for f in model._meta.concrete_fields]
            self.fks[model] = [(f.column, f.related_model) for f in model._meta.concrete_fields
                               if isinstance(f, m.ForeignKey) and f.related_model in self.models]
        owners: dict[tuple, int] = {}  # (model, id) -> template account id
        from accounts.models import Account

        for model in self.models:
            table = model._meta.db_table
            with conn.cursor() as cur:
                cur.execute(f"SELECT {quoted(self.columns[model])} FROM {table} ORDER BY id")  # noqa: S608
                names = [d.name for d in cur.description]
                found = []
                for values in cur.fetchall():
                    row = dict(zip(names, values, strict=True))
                    if model is Account:
                        owner = row["id"] if row["id"] in templates else None
                    else:
                        owner = next((owners[(target, row[column])] for column, target in self.fks[model]
                                      if (target, row[column]) in owners), None)
                    if owner is not None:
                        owners[(model, row["id"])] = owner
                        found.append((owner, row))
                cur.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}")  # noqa: S608
                self.next_id[model] = cur.fetchone()[0]
            self.rows[model] = found
        self.label = {model: model._meta.label_lower for model in self.models}
        with conn.cursor() as cur:
            cur.execute("SELECT series, year, last_number FROM invoices_invoicesequence")
            self.numbers = {(series, year): last for series, year, last in cur.fetchall()}
        with sqlite3.connect(sandbox_path) as books:
            books.row_factory = sqlite3.Row
            self.payments = {row["attempt_id"]: dict(row) for row in books.execute("SELECT * FROM payments")}

    def rows_of(self, template: int):
        for model in self.models:
            for owner, row in self.rows[model]:
                if owner == template:
                    yield model, row

    def copy(self, template: int, number: int, out: dict, payments: list) -> None:
        """Copy one template account as account `number`; rows appended to out[model], sandbox
        payments to `payments`."""
        from psycopg.types.json import Jsonb

        ids, tokens, refs, cards = {}, {}, {}, {}
        for model, row in self.rows_of(template):  # first every new id, token and reference
            ids[(model, row["id"])] = self.next_id[model]
            self.next_id[model] += 1
            label = self.label[model]
            if label == "licenses.purchase":
                tokens[row["token"]] = uuid.uuid4().hex
            elif label == "payments.card":
                cards[row["gateway_ref"]] = f"{row['gateway_ref'].rsplit('_', 1)[0]}_{secrets.token_hex(8)}"
            elif label == "payments.paymentattempt" and row["processor_ref"]:
                refs[row["processor_ref"]] = f"sb_pi_{secrets.token_hex(10)}"
        name = f"Bench Renewals {number:05d} Ltd"
        by_model = {}
        for model, row in self.rows_of(template):
            new = dict(row, id=ids[(model, row["id"])])
            for column, target in self.fks[model]:
                if new[column] is not None and (target, new[column]) in ids:
                    new[column] = ids[(target, new[column])]
            label = self.label[model]
            if label == "accounts.account":
                new["name"] = name
            elif label == "accounts.user":
                new["email"] = f"renewals{number}@example.com"
            elif label == "payments.card":
                new["gateway_ref"] = cards[row["gateway_ref"]]
            elif label == "licenses.purchase":
                new["token"] = tokens[row["token"]]
            elif label == "invoices.invoice":
                key = (row["series"], row["year"])
                assert not row["series"], "templates are real accounts"
                self.numbers[key] = self.numbers.get(key, 0) + 1
                new["sequence"] = self.numbers[key]
                new["number"] = f"PB-{row['year']}-{new['sequence']:06d}"
                new["buyer_name"] = name
            elif label == "payments.paymentattempt":
                kind, token, attempt_number = row["idempotency_key"].split(":")
                assert kind == "purchase", row["idempotency_key"]
                new["idempotency_key"] = f"{kind}:{tokens[token]}:{attempt_number}"
                new["order"] = {**row["order"], "token": tokens[row["order"]["token"]],
                                "user_id": ids.get((self.user_model, row["order"]["user_id"]))}
                if row["processor_ref"]:
                    new["processor_ref"] = refs[row["processor_ref"]]
                    new["processor_answer"] = {**row["processor_answer"], "id": refs[row["processor_ref"]]}
                paid = self.payments.get(row["id"])
                if paid is not None:
                    payments.append({**paid, "id": refs[paid["id"]], "attempt_id": new["id"],
                                     "card_ref": cards[paid["card_ref"]], "created": time.time()})
            elif label == "invoices.invoicestatuschange" and row["attempt_id"] is not None:
                new["attempt_id"] = ids[(self.attempt_model, row["attempt_id"])]
            by_model.setdefault(model, []).append(new)
        for model, rows in by_model.items():
            out.setdefault(model, []).extend(
                tuple(Jsonb(v) if isinstance(v, dict | list) else v for v in (r[c] for c in self.columns[model]))
                for r in rows)

    @property
    def user_model(self):
        from accounts.models import User

        return User

    @property
    def attempt_model(self):
        from payments.models import PaymentAttempt

        return PaymentAttempt

    def write(self, out: dict) -> None:
        with self.conn.cursor() as cur:
            for model in self.models:
                if out.get(model):
                    with cur.copy(f"COPY {model._meta.db_table} ({quoted(self.columns[model])}) FROM STDIN") as copy:
                        for values in out[model]:
                            copy.write_row(values)
        self.conn.commit()

    def finish(self) -> None:
        """The id sequences past the copies, the invoice numbers used recorded."""
        with self.conn.cursor() as cur:
            for model in self.models:
                table = model._meta.db_table
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                            f"(SELECT coalesce(max(id), 1) FROM {table}))")
            for (series, year), last in self.numbers.items():
                cur.execute("UPDATE invoices_invoicesequence SET last_number = %s WHERE series = %s AND year = %s",
                            [last, series, year])
                if cur.rowcount != 1:
                    cur.execute("INSERT INTO invoices_invoicesequence (series, year, last_number) VALUES (%s, %s, %s)",
                                [series, year, last])
        self.conn.commit()


def seed(args, db_url: str, sandbox_path: str, due: datetime.date) -> dict:
    """The template accounts, then their copies: args.accounts accounts in all. What was seeded."""
    import psycopg
    from django.core.management import call_command
    from django.db import connections

    started = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("createcachetable", verbosity=0)  # as `make seed` leaves a deployed database
    templates = seed_templates(due, args.licenses_per_account)
    connections.close_all()
    templates_s = time.perf_counter() - started
    with psycopg.connect(db_url) as conn:
        copier = Copier(conn, templates, sandbox_path)
        chunk, out, payments = 2000, {}, []
        for number in range(len(templates) + 1, args.accounts + 1):
            copier.copy(templates[(number - 1) % len(templates)], number, out, payments)
            if number % chunk == 0 or number == args.accounts:
                copier.write(out)
                out = {}
        copier.finish()
        with sqlite3.connect(sandbox_path) as books:
            if payments:
                columns = list(payments[0])
                books.executemany(f"INSERT INTO payments ({', '.join(columns)}) "  # noqa: S608
                                  f"VALUES ({', '.join('?' * len(columns))})",
                                  [tuple(p[c] for c in columns) for p in payments])
        books.close()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        counts = table_counts(conn)
        due_accounts = conn.execute(
            "SELECT count(DISTINCT account_id), count(*), min(period_end), max(period_end) FROM licenses_license "
            "WHERE status <> 'expired'").fetchone()
    assert due_accounts == (args.accounts, args.accounts * args.licenses_per_account, due, due), due_accounts
    return {"seconds": round(time.perf_counter() - started, 1), "templates_s": round(templates_s, 1),
            "templates": len(templates), "rows": counts}


def table_counts(conn) -> dict[str, int]:
    """Rows of every account table (and the task queue)."""
    tables = [model._meta.db_table for model in account_models()] + [TASKS_TABLE]
    return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}  # noqa: S608


# --- the query log of the real path --------------------------------------------------------------------

def statement(sql: str) -> str:
    """"INSERT invoices_invoice", "SELECT licenses_license", "SAVEPOINT"…: what a query does, and where."""
    import re

    words = sql.split()
    verb = words[0].upper() if words else "?"
    if verb == "WITH" and "UPDATE" in sql.upper():
        verb = "WITH…UPDATE"
    table = re.search(r'(?:FROM|INTO|UPDATE)\s+"?([a-z_]+)"?', sql, re.IGNORECASE)
    return f"{verb} {table.group(1)}" if table and verb not in ("SAVEPOINT", "RELEASE", "ROLLBACK") else verb


def query_log(account_ids: list[int]) -> dict:
    """The SQL of one batch's run through the real renewal task (its charges included: the task sends
    them), in-process, on a copy of the seeded database: the statement counts, for the batch and per account."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from billing.tasks import renew_accounts_task

    with CaptureQueriesContext(connection) as task:
        done = renew_accounts_task.call(account_ids)
    assert (done["renewed"], done.get("succeeded")) == (len(account_ids), len(account_ids)), done
    queries = task.captured_queries
    return {"accounts": len(account_ids), "queries": len(queries),
            "per account": round(len(queries) / len(account_ids), 2),
            "statements": dict(Counter(statement(q["sql"]) for q in queries)), "sql": [q["sql"] for q in queries]}


# --- the floor: the same rows, plain SQL, one transaction per account --------------------------------

def server_cpu(db_url: str) -> float | None:
    """CPU seconds the whole PostgreSQL server has used: the postmaster, its live processes and the
    ones it has reaped (a backend's CPU lands in the postmaster's children times when it exits).
    Other users of the server count too; None when /proc cannot tell (another machine, no rights)."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        backend = conn.info.backend_pid
        try:
            postmaster = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
            fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            return None
    tick = os.sysconf("SC_CLK_TCK")
    total = sum(int(f) for f in fields[11:15]) / tick  # utime, stime, cutime, cstime
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(stat[1]) == postmaster:
                total += (int(stat[11]) + int(stat[12])) / tick
    return total


PG_STATS = ("sessions", "xact_commit", "xact_rollback", "tup_inserted", "tup_updated")


def pg_stats(db_url: str) -> dict[str, int]:
    """The database's cumulative counters (pg_stat_database), as a fresh connection sees them."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(f"SELECT {', '.join(PG_STATS)} FROM pg_stat_database "  # noqa: S608
                           "WHERE datname = current_database()").fetchone()
    return dict(zip(PG_STATS, row, strict=True))


def per_renewal(before: dict, after: dict, renewals: int, own_transactions: int = 0) -> dict:
    """What the database did per renewal between two pg_stats (the bench's own polls left out)."""
    delta = {name: after[name] - before[name] for name in PG_STATS}
    delta["xact_commit"] -= own_transactions
    return {name: round(value / renewals, 2) for name, value in delta.items()}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (Linux /proc), None if unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def floor(db_url: str, due: datetime.date) -> dict:
    """Renew every account as the run leaves it once charged, in one transaction each on one psycopg
    connection: no ORM, no queue, no processor, no email. Its wall time and rate."""
    import psycopg

    stats, server = pg_stats(db_url), server_cpu(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        prices = {(tier, period): price for tier, period, price in conn.execute(
            "SELECT DISTINCT ON (tier, period) tier, period, unit_price FROM licenses_pricelistentry "
            "WHERE effective_from <= %s ORDER BY tier, period, effective_from DESC", [due])}
        accounts = [row[0] for row in conn.execute(
            "SELECT id FROM accounts_account WHERE NOT is_test_account ORDER BY id")]
        backend = conn.info.backend_pid
        backend_cpu, client_cpu = cpu_seconds(backend), time.process_time()
        started = time.perf_counter()
        renewed = 0
        for account_id in accounts:
            with conn.transaction():
                renewed += renew_plainly(conn, account_id, due, prices)
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - client_cpu
        backend_after = cpu_seconds(backend)
    backend_ms = (backend_after - backend_cpu) * 1000 / renewed if backend_cpu is not None and backend_after else None
    time.sleep(0.5)  # the closed connection's statistics reach pg_stat_database
    server_after = server_cpu(db_url)
    return {"accounts": len(accounts), "renewed": renewed, "seconds": round(elapsed, 2),
            "postgres_server_cpu_ms_per_renewal":
                None if None in (server, server_after) else round((server_after - server) * 1000 / renewed, 2),
            "postgres per renewal": per_renewal(stats, pg_stats(db_url), renewed, own_transactions=2),
            "renewals_per_s": round(renewed / elapsed, 1),
            "client_cpu_ms_per_renewal": round(client_cpu * 1000 / renewed, 2),
            "postgres_backend_cpu_ms_per_renewal": round(backend_ms, 2) if backend_ms is not None else None}


def renew_plainly(conn, account_id: int, due: datetime.date, prices: dict) -> int:
    """One account's renewal, paid: the rows `renewal_prepare` and the charge step write, in their
    final state. 1 if it renewed."""
    from django.conf import settings
    from psycopg.types.json import Jsonb

    from pictor_billing import pricing
    from pictor_billing.money import format_usd, to_minor_units

    now = datetime.datetime.now(datetime.UTC)
    cur = conn.cursor()
    name, line1, line2, city, postal, country, vat_id, anchor_day = cur.execute(
        "SELECT name, address_line1, address_line2, city, postal_code, country, vat_id, monthly_anchor_day "
        "FROM accounts_account WHERE id = %s FOR UPDATE", [account_id]).fetchone()
    licenses = cur.execute(
        "SELECT l.id, l.tier, l.period, l.period_end, l.cancel_at_period_end, g.anchor_on FROM licenses_license l "
        "JOIN licenses_renewalgroup g ON g.id = l.group_id WHERE l.account_id = %s AND l.status <> 'expired' "
        "FOR UPDATE OF l", [account_id]).fetchall()
    credit, card_id, brand, last4 = cur.execute(
        "SELECT (SELECT coalesce(sum(amount), 0) FROM payments_creditentry WHERE account_id = %s), id, brand, last4 "
        "FROM payments_card WHERE account_id = %s AND is_default AND removed_at IS NULL",
        [account_id, account_id]).fetchone()
    renewing = [pricing.RenewingLicense(
        lic_id, tier, period, pricing.next_monthly_date(due, anchor_day) if period == pricing.MONTHLY
        else pricing.next_annual_date(due, anchor_on))
        for lic_id, tier, period, period_end, cancelled, anchor_on in licenses if period_end == due and not cancelled]
    if not renewing:
        return 0
    others = sum(1 for _, _, _, period_end, cancelled, _ in licenses if period_end > due and not cancelled)
    quote = pricing.quote_renewal(billing_date=due, prices=prices, renewing=renewing, others_active=others,
                                  credit_balance=credit)
    seller = settings.SELLER
    city_line = " ".join(part for part in (postal, city) if part)
    address = "\n".join(part for part in (line1, line2, city_line, country) if part)
    plural = "s" if quote.quantity > 1 else ""
    charged = bool(quote.total_due)
    (invoice_id,) = cur.execute(
        "INSERT INTO invoices_invoice (account_id, series, year, service_from, service_to, kind, issued_on, "
        "description, status, subtotal, discount_total, credit_applied, total, currency, buyer_name, buyer_address, "
        "buyer_vat_id, seller_name, seller_address, seller_email, seller_vat_id, created_at) VALUES (%s, '', %s, %s, "
        "%s, 'renewal', %s, %s, 'paid', %s, %s, %s, %s, 'USD', %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        [account_id, now.year, due, quote.service_to, now.date(),
         f"Renewal of {quote.quantity} license{plural} on {due:%b} {due.day}, {due.year}", quote.subtotal,
         quote.volume_discount, quote.credit_applied, quote.total_due, name, address, vat_id, seller["name"],
         seller["address"], seller["email"], seller["vat_id"], now]).fetchone()
    cur.execute("INSERT INTO invoices_invoiceline (invoice_id, position, kind, description, quantity, unit_price, "
                "amount) VALUES " + ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(quote.lines)),
                [v for position, line in enumerate(quote.lines, start=1) for v in (
                    invoice_id, position, line.kind, line.description, line.quantity, line.unit_price, line.amount)])
    attempt_id = None
    if charged:
        reference = f"sb_pi_{secrets.token_hex(10)}"
        answer = {"id": reference, "status": "succeeded", "amount": to_minor_units(quote.total_due),
                  "amount_refunded": 0, "decline_code": "", "message": ""}
        (attempt_id,) = cur.execute(
            "INSERT INTO payments_paymentattempt (account_id, card_id, invoice_id, purpose, kind, amount, currency, "
            "description, off_session, idempotency_key, status, gateway, processor_ref, processor_answer, "
            "failure_reason, \"order\", sent_at, created_at, updated_at) VALUES (%s, %s, %s, 'renewal', 'charge', %s, "
            "'USD', %s, true, %s, 'succeeded', 'sandbox', %s, %s, '', '{}', %s, %s, %s) RETURNING id",
            [account_id, card_id, invoice_id, quote.total_due, f"Renewal {due:%Y-%m-%d}", f"invoice:{invoice_id}:1",
             reference, Jsonb(answer), now, now, now]).fetchone()
        cur.execute("INSERT INTO invoices_invoicestatuschange (invoice_id, from_status, to_status, changed_at, reason, "
                    "attempt_id) VALUES (%s, '', 'open', %s, 'Issued; the default card is charged next', NULL), "
                    "(%s, 'open', 'paid', %s, %s, %s)",
                    [invoice_id, now, invoice_id, now, f"Paid: {format_usd(quote.total_due)} by {brand} ending {last4}",
                     attempt_id])
    else:
        cur.execute("INSERT INTO invoices_invoicestatuschange (invoice_id, from_status, to_status, changed_at, reason) "
                    "VALUES (%s, '', 'paid', %s, 'Issued; paid by credit')", [invoice_id, now])
    cur.execute("INSERT INTO billing_renewal (account_id, billing_date, invoice_id, status, failed_attempts, "
                "settled_attempt_id, created_at) VALUES (%s, %s, %s, 'paid', 0, %s, %s)",
                [account_id, due, invoice_id, attempt_id, now])
    cur.execute("UPDATE licenses_license AS l SET period_start = %s, period_end = v.e, list_price = v.p, "
                "discount_rate = v.r FROM (VALUES " + ", ".join(["(%s::bigint, %s::date, %s::numeric, %s::numeric)"]
                                                               * len(quote.licenses))
                + ") AS v(id, e, p, r) WHERE l.id = v.id",
                [due, *(v for lic in quote.licenses for v in (lic.id, lic.renews_to, lic.list_price, lic.rate))])
    cur.execute("INSERT INTO licenses_licenseterm (license_id, kind, starts_on, ends_on, tier, period, list_price, "
                "rate, paid, invoice_id, created_at) VALUES "
                + ", ".join(["(%s, 'renewal', %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(quote.licenses)),
                [v for lic in quote.licenses for v in (lic.id, due, lic.renews_to, lic.tier, lic.period, lic.list_price,
                                                       lic.rate, lic.paid, invoice_id, now)])
    if quote.credit_applied:
        cur.execute("INSERT INTO payments_creditentry (account_id, kind, amount, invoice_id, note, created_at) "
                    "VALUES (%s, 'applied', %s, %s, 'Applied to a renewal', %s)",
                    [account_id, -quote.credit_applied, invoice_id, now])
    cur.execute("WITH taken AS (UPDATE invoices_invoicesequence SET last_number = last_number + 1 "
                "WHERE series = '' AND year = %s RETURNING last_number) UPDATE invoices_invoice SET "
                "sequence = taken.last_number, number = %s || lpad(taken.last_number::text, 6, '0') FROM taken "
                "WHERE invoices_invoice.id = %s", [now.year, f"PB-{now.year}-", invoice_id])
    if cur.rowcount != 1:
        raise RuntimeError(f"no invoice sequence for {now.year}")  # the seed creates this year's
    return 1


# --- the real run: db_worker processes on the queue ---------------------------------------------------

class Workers:
    """`manage.py db_worker` processes, each in its own process group and logging to a file of its own."""

    def __init__(self, count: int, env: dict, label: str):
        self.procs, self.logs = [], []
        for index in range(1, count + 1):
            log_path = base.RESULTS / f"renewals-{label}-worker{index}.log"
            self.logs.append(log_path)
            with open(log_path, "wb") as log:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay", "--interval",
                     "0.1", "--worker-id", f"bench-{label}-{index}"],
                    cwd=base.BASE, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            if all(b"Starting worker" in path.read_bytes() for path in self.logs):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the workers did not start within {timeout:.0f} s:\n{self.tails()}")

    def check(self) -> None:
        if any(proc.poll() is not None for proc in self.procs):
            raise RuntimeError(f"a worker exited:\n{self.tails()}")

    def cpu(self) -> float | None:
        """CPU seconds the workers have used (their charge threads included)."""
        used = [cpu_seconds(proc.pid) for proc in self.procs]
        return None if None in used else sum(used)

    def tails(self) -> str:
        return "\n".join(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:])
                         for path in self.logs)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()  # the worker finishes the task it is running, then exits
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # its own group (start_new_session)
                except ProcessLookupError:
                    pass
                proc.wait(5)
        self.procs = []


# What the bench looks at while a run goes on: the renewals on every poll (cheap), the rest only when
# they can have changed the answer, and everything every 5 s for the timeline and the stall check.
RENEWALS_SQL = "SELECT count(*) FROM billing_renewal WHERE billing_date = %s"
IN_FLIGHT_SQL = "SELECT count(*) FROM payments_paymentattempt WHERE purpose = 'renewal' AND status = ANY(%s)"
OPEN_TASKS_SQL = f"SELECT count(*) FROM {TASKS_TABLE} WHERE status IN ('READY', 'RUNNING')"  # noqa: S608
SAMPLE_SQL = f"""
SELECT (SELECT count(*) FROM billing_renewal WHERE billing_date = %(due)s),
       (SELECT count(*) FROM payments_paymentattempt WHERE purpose = 'renewal' AND status = 'succeeded'),
       (SELECT count(*) FROM {TASKS_TABLE} WHERE status IN ('READY', 'RUNNING')),
       (SELECT count(*) FROM {TASKS_TABLE} WHERE status = 'FAILED'),
       (SELECT count(*) FROM {TASKS_TABLE} WHERE status = 'SUCCESSFUL')
"""  # noqa: S608


def billing_pass(args, db_url: str, sandbox: Path, due: datetime.date, *, workers: int, latency_ms: int) -> dict:
    """One real run on a fresh copy: the workers started and idle, one scheduler pass, then watch
    the database until every account is renewed and charged, and until the queue is empty."""
    import psycopg
    from django.db import connections

    from billing.scheduler import schedule_pass

    label = f"{workers}w-{latency_ms}ms"
    env = dict(os.environ, DATABASE_URL=db_url, SANDBOX_DB=str(sandbox), SANDBOX_LATENCY_MS=str(latency_ms),
               BILLING_CHARGE_CONCURRENCY=str(args.charge_concurrency), PYTHONUNBUFFERED="1")
    load_before = [round(x, 2) for x in os.getloadavg()]
    stats = pg_stats(db_url)
    polls = 0
    server = server_cpu(db_url)
    pool = Workers(workers, env, label)
    try:
        pool.wait_ready()
        with psycopg.connect(db_url, autocommit=True) as watch:
            workers_cpu, own_cpu = pool.cpu(), time.process_time()
            started = time.perf_counter()
            enqueued = schedule_pass()
            enqueue_s = time.perf_counter() - started
            if args.analyze_queue:  # fresh statistics: the workers' claim query uses the queue's ordered index
                watch.execute(f"ANALYZE {TASKS_TABLE}")
            connections.close_all()
            marks, timeline = {}, []
            last_change, last_seen, last_sample = 0.0, None, -10.0

            def count(sql: str, params=None) -> int:
                nonlocal polls
                polls += 1
                return watch.execute(sql, params).fetchone()[0]

            while True:
                elapsed = time.perf_counter() - started
                if elapsed - last_sample >= 5:  # the timeline, progress, failures and stalls
                    last_sample = elapsed
                    polls += 1
                    renewals, charged, open_tasks, failed, finished = watch.execute(
                        SAMPLE_SQL, {"due": due}).fetchone()
                    timeline.append([round(elapsed, 1), renewals, charged, open_tasks])
                    if len(timeline) % 6 == 0:
                        print(f"    {elapsed:6.0f} s: {renewals:,} renewed, {charged:,} charged, {open_tasks:,} tasks "
                              "queued or running", flush=True)
                    if failed:
                        raise RuntimeError(f"{failed} tasks failed; see {TASKS_TABLE}.traceback and\n{pool.tails()}")
                    seen = (renewals, charged, finished)
                    if seen != last_seen:
                        last_seen, last_change = seen, elapsed
                    elif elapsed - last_change > args.stall:
                        raise RuntimeError(f"nothing moved for {args.stall:.0f} s at {seen}:\n{pool.tails()}")
                    pool.check()
                if "prepared_s" not in marks and count(RENEWALS_SQL, [due]) >= args.accounts:
                    marks["prepared_s"] = elapsed
                if "prepared_s" in marks and "charged_s" not in marks and not count(IN_FLIGHT_SQL, [list(IN_FLIGHT)]):
                    marks["charged_s"] = elapsed
                if "charged_s" in marks and not count(OPEN_TASKS_SQL):
                    marks["drained_s"] = elapsed
                    break
                time.sleep(args.poll)
            polls += 1
            timeline.append([round(elapsed, 1), *watch.execute(SAMPLE_SQL, {"due": due}).fetchone()[:3]])
            tasks = dict(watch.execute(f"SELECT task_path, count(*) FROM {TASKS_TABLE} GROUP BY 1").fetchall())  # noqa: S608
            used = pool.cpu()
            workers_cpu = used - workers_cpu if used is not None and workers_cpu is not None else None
            own_cpu = time.process_time() - own_cpu
    finally:
        pool.stop()
    time.sleep(0.5)  # the workers' closed connections' statistics reach pg_stat_database
    database = per_renewal(stats, pg_stats(db_url), args.accounts, own_transactions=polls + 1)
    server_after = server_cpu(db_url)
    seconds = marks["charged_s"]
    return {"workers": workers, "latency_ms": latency_ms, "enqueued": dict(enqueued),
            "enqueue_s": round(enqueue_s, 2), "prepared_s": round(marks["prepared_s"], 2),
            "seconds": round(seconds, 2), "drained_s": round(marks["drained_s"], 2),
            "renewals_per_s": round(args.accounts / seconds, 1),
            "licenses_per_s": round(args.accounts * args.licenses_per_account / seconds, 1),
            "workers_cpu_ms_per_renewal (to queue empty)":
                round(workers_cpu * 1000 / args.accounts, 2) if workers_cpu is not None else None,
            "bench_cpu_ms_per_renewal (scheduler pass, polling)": round(own_cpu * 1000 / args.accounts, 2),
            "postgres_server_cpu_ms_per_renewal (to queue empty)":
                None if None in (server, server_after) else round((server_after - server) * 1000 / args.accounts, 2),
            "postgres per renewal (to queue empty)": database,
            "tasks": tasks, "timeline [s, renewals, charged, open tasks]": timeline,
            "loadavg": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
            "logs": [str(path.relative_to(base.BASE)) for path in pool.logs]}


# --- the books ------------------------------------------------------------------------------------------

def books_check(db_url: str, sandbox: Path | None, due: datetime.date, accounts: int, licenses: int) -> dict:
    """One renewal per account, paid; invoice numbers gap-free per series and year; every license
    renewed once; and (with the sandbox's books) the processor holding exactly what the attempts say."""
    import psycopg

    problems = []

    def expect(what: str, got, wanted) -> None:
        if got != wanted:
            problems.append(f"{what}: {got!r}, expected {wanted!r}")

    with psycopg.connect(db_url) as conn:
        def one(sql: str, *params):
            return conn.execute(sql, params).fetchone()

        renewals, renewed_accounts, paid = one(
            "SELECT count(*), count(DISTINCT account_id), count(*) FILTER (WHERE status = 'paid') FROM billing_renewal "
            "WHERE billing_date = %s", due)
        expect("renewals", (renewals, renewed_accounts, paid), (accounts, accounts, accounts))
        expect("accounts without their renewal", one(
            "SELECT count(*) FROM accounts_account a WHERE NOT EXISTS (SELECT 1 FROM billing_renewal r "
            "WHERE r.account_id = a.id AND r.billing_date = %s)", due)[0], 0)
        expect("other renewals", one("SELECT count(*) FROM billing_renewal WHERE billing_date <> %s", due)[0], 0)
        invoices, invoices_paid, billed = one(
            "SELECT count(*), count(*) FILTER (WHERE status = 'paid'), coalesce(sum(total), 0) FROM invoices_invoice "
            "WHERE kind = 'renewal'")
        expect("renewal invoices (all, paid)", (invoices, invoices_paid), (accounts, accounts))
        for series, year, count, distinct, low, high, last in conn.execute(
                "SELECT i.series, i.year, count(*), count(DISTINCT i.sequence), min(i.sequence), max(i.sequence), "
                "s.last_number FROM invoices_invoice i LEFT JOIN invoices_invoicesequence s "
                "ON s.series = i.series AND s.year = i.year GROUP BY i.series, i.year, s.last_number"):
            expect(f"invoice numbers {series or 'PB'} {year} (count, distinct, first, last, sequence)",
                   (count, distinct, low, high, last), (count, count, 1, count, count))
        expect("licenses active and renewed past the date", one(
            "SELECT count(*) FILTER (WHERE status = 'active' AND period_end > %s), count(*) FROM licenses_license",
            due), (licenses, licenses))
        expect("renewal terms", one("SELECT count(*), count(DISTINCT license_id) FROM licenses_licenseterm "
                                    "WHERE kind = 'renewal'"), (licenses, licenses))
        attempts = {attempt_id: (ref, int(amount * 100), status) for attempt_id, ref, amount, status in conn.execute(
            "SELECT id, processor_ref, amount, status FROM payments_paymentattempt WHERE purpose = 'renewal'")}
        expect("renewal attempts succeeded", Counter(status for _, _, status in attempts.values()),
               Counter(succeeded=one("SELECT count(*) FROM invoices_invoice WHERE kind = 'renewal' AND total > 0")[0]))
        charged = sum(cents for _, cents, status in attempts.values() if status == "succeeded")
        expect("renewal charges = renewal totals (cents)", charged, int(billed * 100))
        taken = int(one("SELECT coalesce(sum(amount), 0) FROM payments_paymentattempt WHERE status = 'succeeded' "
                        "AND kind IN ('authorize', 'charge')")[0] * 100)
    result = {"renewals": renewals, "renewal invoices paid": invoices_paid, "renewal charges": len(attempts),
              "charged cents": charged}
    if sandbox is not None:
        with sqlite3.connect(sandbox) as books:
            held = {attempt_id: (ref, amount, status) for ref, attempt_id, amount, status in books.execute(
                "SELECT id, attempt_id, amount, status FROM payments WHERE capture = 'automatic'")}
            total_held = books.execute("SELECT coalesce(sum(amount - amount_refunded), 0) FROM payments "
                                       "WHERE status IN ('succeeded', 'refunded')").fetchone()[0]
            twice = books.execute("SELECT count(*) - count(DISTINCT attempt_id) FROM payments").fetchone()[0]
        books.close()
        expect("sandbox renewal charges = the renewal attempts (ref, cents, status)", held, attempts)
        expect("sandbox: money taken = succeeded attempts (purchases included, cents)", total_held, taken)
        expect("sandbox: attempts charged twice", twice, 0)
        result["sandbox holds cents"] = total_held
    return {**result, "ok": not problems, "problems": problems}


# --- databases: one seeded template, a fresh copy per measurement ----------------------------------------

def create_from(pg: str, name: str, template: str) -> None:
    from psycopg import sql

    with base.admin_connect(pg) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
            sql.Identifier(name), sql.Identifier(template)))


def sandbox_copy(source: Path, target: Path) -> Path:
    """A consistent copy of the sandbox's SQLite books (its WAL included)."""
    target.unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    return target


class Bench:
    """The databases and sandbox files of one benchmark, and a fresh copy of both on demand."""

    def __init__(self, args):
        self.args = args
        self.template = f"{args.db}_seed"
        self.db_url = f"{args.pg.rstrip('/')}/{args.db}"
        self.dir = Path(tempfile.mkdtemp(prefix="pictor-bench-renewals-"))
        self.seed_sandbox = self.dir / "sandbox-seed.sqlite3"
        self.created: list[str] = []

    def fresh(self, label: str) -> Path:
        """The database as seeded again (and the Django connection closed); a sandbox copy for `label`."""
        from django.db import connections

        connections.close_all()
        create_from(self.args.pg, self.args.db, self.template)
        return sandbox_copy(self.seed_sandbox, self.dir / f"sandbox-{label}.sqlite3")

    def cleanup(self) -> None:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not be set up yet
            pass
        for name in reversed(self.created):
            if name == self.template and self.args.keep_db:
                print(f"kept the seeded database {name}", flush=True)
                continue
            base.database_drop(self.args.pg, name)
            print(f"dropped database {name}", flush=True)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- main ------------------------------------------------------------------------------------------------

def main() -> int:
    args = parse_args()
    bench = Bench(args)
    os.environ.update(DATABASE_URL=bench.db_url, DJANGO_SETTINGS_MODULE="pictor_billing.settings", DEBUG="0",
                      LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"), TASKS_BACKEND="database",
                      SANDBOX_DB=str(bench.seed_sandbox), SANDBOX_LATENCY_MS="0",
                      EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
                      BILLING_CHARGE_CONCURRENCY=str(args.charge_concurrency),
                      BILLING_ACCOUNTS_PER_TASK=str(args.accounts_per_task))
    base.RESULTS.mkdir(parents=True, exist_ok=True)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    load_before = [round(x, 2) for x in os.getloadavg()]
    try:
        licenses = args.accounts * args.licenses_per_account
        print(f"creating database {args.db} and seeding {args.accounts:,} accounts with {licenses:,} licenses ...",
              flush=True)
        bench.created.append(args.db)
        base.database_create(args.pg, args.db)
        base.django_setup()
        from django.db import connections

        from pictor_billing import clock

        due = billing_date(clock.today())
        seeded = seed(args, bench.db_url, str(bench.seed_sandbox), due)
        connections.close_all()
        bench.created.append(bench.template)
        create_from(args.pg, bench.template, args.db)
        print(f"  seeded in {seeded['seconds']:.1f} s ({seeded['templates']} templates bought for real in "
              f"{seeded['templates_s']:.1f} s, the rest copied); all due on {due}", flush=True)
        from psycopg import connect

        with connect(bench.db_url) as conn:  # the first copies: every pattern, as the scheduler batches them
            batch = [row[0] for row in conn.execute(
                "SELECT id FROM accounts_account WHERE name LIKE 'Bench Renewals %%' ORDER BY id LIMIT %s",
                [args.accounts_per_task])]
        from django.conf import settings

        settings.SANDBOX_DB = str(sandbox_copy(bench.seed_sandbox, bench.dir / "sandbox-query-log.sqlite3"))
        logged = query_log(batch)
        print(f"queries for a batch of {logged['accounts']} accounts through renew_accounts_task, its charges "
              f"included (in-process): {logged['queries']} ({logged['per account']:.2f} per account)", flush=True)

        print("floor: the same rows in plain SQL, one transaction per account ...", flush=True)
        bench.fresh("floor")
        floor_result = floor(bench.db_url, due)
        floor_result["books"] = books_check(bench.db_url, None, due, args.accounts, licenses)
        with connect(bench.db_url) as conn:
            floor_rows = {t: n - seeded["rows"][t] for t, n in table_counts(conn).items()}
        print(f"  {floor_result['seconds']:.1f} s, {floor_result['renewals_per_s']:,.0f} renewals/s", flush=True)

        runs = []
        plan = [(1, 0), (2, 0)] + ([(args.latency_workers, 0)] if args.latency_workers not in (1, 2) else []) \
            + [(args.latency_workers, args.latency_ms)]
        if args.no_runs:
            plan = []
        for workers, latency in plan:
            print(f"billing run: {workers} worker(s), sandbox latency {latency} ms ...", flush=True)
            sandbox = bench.fresh(f"{workers}w-{latency}ms")
            result = billing_pass(args, bench.db_url, sandbox, due, workers=workers, latency_ms=latency)
            result["books"] = books_check(bench.db_url, sandbox, due, args.accounts, licenses)
            with connect(bench.db_url) as conn:
                result["rows written"] = {t: n - seeded["rows"][t] for t, n in table_counts(conn).items()}
            runs.append(result)
            print(f"  {result['seconds']:.1f} s ({result['renewals_per_s']:,.0f} renewals/s; every renewal recorded at "
                  f"{result['prepared_s']:.1f} s, queue empty at {result['drained_s']:.1f} s); books "
                  f"{'ok' if result['books']['ok'] else 'WRONG: ' + '; '.join(result['books']['problems'])}",
                  flush=True)

        report = summarize(args, seeded, due, logged, floor_result, floor_rows, runs, load_before)
        (base.RESULTS / "renewals.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        print_table(report)
        books_ok = floor_result["books"]["ok"] and all(run["books"]["ok"] for run in runs)
        return 0 if books_ok else 1
    finally:
        bench.cleanup()


def summarize(args, seeded, due, logged, floor_result, floor_rows, runs, load_before) -> dict:
    def run_of(workers, latency):
        return next((run for run in runs if run["workers"] == workers and run["latency_ms"] == latency), None)

    def ratio(a, b):
        return round(a["seconds"] / b["seconds"], 2) if a and b else None

    one, two = run_of(1, 0), run_of(2, 0)
    fast, slow = run_of(args.latency_workers, 0), run_of(args.latency_workers, args.latency_ms)
    ratio_floor, ratio_latency = ratio(one, floor_result), ratio(slow, fast)
    differ = {t: {"floor": n, "run": one["rows written"].get(t)} for t, n in floor_rows.items()
              if one and t != TASKS_TABLE and n != one["rows written"].get(t)}
    return {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "figures": figures(args, floor_result, one, two, fast, slow),
        "config": {"accounts": args.accounts, "licenses_per_account": args.licenses_per_account,
                   "licenses": args.accounts * args.licenses_per_account, "billing_date": due.isoformat(),
                   "patterns": patterns(args.licenses_per_account), "charge_concurrency": args.charge_concurrency,
                   "latency_ms": args.latency_ms, "latency_workers": args.latency_workers,
                   "accounts_per_task": args.accounts_per_task,
                   "worker_interval_s": 0.1, "poll_s": args.poll, "analyze_queue": args.analyze_queue,
                   "python": platform.python_version(),
                   "cpus": os.cpu_count()},
        "seed": seeded,
        "query_log": logged,
        "floor": floor_result,
        "floor_rows_differ_from_run": differ,
        "runs": runs,
        "ratio_run_to_floor_1_worker": ratio_floor,
        "ratio_run_to_floor_2_workers": ratio(two, floor_result),
        "floor_goal": FLOOR_GOAL, "floor_goal_met": ratio_floor <= FLOOR_GOAL if ratio_floor else None,
        "ratio_latency": ratio_latency, "latency_goal": LATENCY_GOAL,
        "latency_goal_met": ratio_latency <= LATENCY_GOAL if ratio_latency else None,
        "loadavg": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
    }


def figure(name, value, unit, goal, met, *, baseline_name=None, baseline=None, ratio=None) -> dict:
    """One row of `make bench`'s table (bench/report.py): the shape every bench script writes."""
    return {"name": name, "value": value, "unit": unit, "baseline_name": baseline_name, "baseline": baseline,
            "ratio": ratio, "goal": goal, "met": met}


def figures(args, floor_result, one, two, fast, slow) -> list[dict]:
    """The run's figures: seconds against the floor's (1 worker: the goal; 2 workers: reported), and
    the slow processor's run against the same run at 0 ms."""
    size = f"{args.accounts:,} accounts"
    floor_name = "floor: the same rows in plain SQL, 1 transaction per account"
    found = []
    for workers, run in ((1, one), (2, two)):
        if run is None:
            continue
        ratio = round(run["seconds"] / floor_result["seconds"], 2)
        found.append(figure(f"billing run, {size}, {workers} worker{'s' * (workers > 1)}", run["seconds"], "s",
                            f"≤ {FLOOR_GOAL}× floor" if workers == 1 else None,
                            ratio <= FLOOR_GOAL if workers == 1 else None, baseline_name=floor_name,
                            baseline=floor_result["seconds"], ratio=ratio))
        found.append(figure(f"billing run, {size}, {workers} worker{'s' * (workers > 1)}: renewals/s",
                            run["renewals_per_s"], "renewals/s", None, None, baseline_name=floor_name,
                            baseline=floor_result["renewals_per_s"],
                            ratio=round(run["renewals_per_s"] / floor_result["renewals_per_s"], 2)))
    if fast and slow:
        ratio = round(slow["seconds"] / fast["seconds"], 2)
        found.append(figure(f"billing run, {size}, {args.latency_workers} workers, sandbox {args.latency_ms} ms",
                            slow["seconds"], "s", f"≤ {LATENCY_GOAL}× 0 ms", ratio <= LATENCY_GOAL,
                            baseline_name="the same run, sandbox 0 ms", baseline=fast["seconds"], ratio=ratio))
    return found


def print_table(report: dict) -> None:
    config, floor_result = report["config"], report["floor"]
    print(f"\nBilling run on PostgreSQL: {config['accounts']:,} accounts, {config['licenses']:,} licenses, "
          f"due {config['billing_date']}; charge step {config['charge_concurrency']} threads")
    print(f"  seed: {report['seed']['seconds']:.1f} s")
    print(f"{'':2}{'CPU ms per renewal:':>108}")
    print(f"{'':2}{'measurement':<36}{'seconds':>9}{'renewals/s':>12}{'all recorded s':>16}{'queue empty s':>15}"
          f"{'Python':>10}{'PostgreSQL':>12}")

    def ms(value) -> str:
        return f"{value:.1f}" if value is not None else "?"

    print(f"{'':2}{'floor (plain SQL, 1 connection)':<36}{floor_result['seconds']:>9.1f}"
          f"{floor_result['renewals_per_s']:>12,.1f}{'':>31}{ms(floor_result['client_cpu_ms_per_renewal']):>10}"
          f"{ms(floor_result['postgres_server_cpu_ms_per_renewal']):>12}")
    for run in report["runs"]:
        label = f"run, {run['workers']} worker(s), sandbox {run['latency_ms']} ms"
        print(f"{'':2}{label:<36}{run['seconds']:>9.1f}{run['renewals_per_s']:>12,.1f}{run['prepared_s']:>16.1f}"
              f"{run['drained_s']:>15.1f}{ms(run['workers_cpu_ms_per_renewal (to queue empty)']):>10}"
              f"{ms(run['postgres_server_cpu_ms_per_renewal (to queue empty)']):>12}")
    print("  (CPU to the queue empty: the floor's process / the workers, and the whole PostgreSQL server, other "
          "users of it included)")
    print("  PostgreSQL per renewal (each autocommit statement is a transaction): " + "; ".join(
        f"{label} {stats['xact_commit']:.1f} transactions, {stats['tup_inserted'] + stats['tup_updated']:.1f} rows "
        f"written, {stats['sessions']:.2f} connections" for label, stats in
        [("floor", floor_result["postgres per renewal"])] + [
            (f"{run['workers']}w {run['latency_ms']} ms", run["postgres per renewal (to queue empty)"])
            for run in report["runs"]]))
    if report["runs"]:
        print(f"  run / floor: {report['ratio_run_to_floor_1_worker']:.2f} with 1 worker (goal <= "
              f"{report['floor_goal']}: {'met' if report['floor_goal_met'] else 'NOT met'}), "
              f"{report['ratio_run_to_floor_2_workers']:.2f} with 2")
        print(f"  {config['latency_ms']} ms / 0 ms ({config['latency_workers']} workers): "
              f"{report['ratio_latency']:.2f} (goal <= {report['latency_goal']}: "
              f"{'met' if report['latency_goal_met'] else 'NOT met'})")
    books = [report["floor"]["books"]] + [run["books"] for run in report["runs"]]
    differ = report["floor_rows_differ_from_run"]
    print(f"  books: {'all ok' if all(b['ok'] for b in books) else 'WRONG (see the JSON)'}; rows the floor wrote "
          f"{'(no run)' if not report['runs'] else 'match the run' if not differ else 'differ: ' + str(differ)}")
    load = report["loadavg"]
    print(f"  load average (1, 5, 15 min) before: {load['before']}, after: {load['after']} on {config['cpus']} CPUs")
    print(f"  written: {base.RESULTS / 'renewals.json'}")


if __name__ == "__main__":
    sys.exit(main())
