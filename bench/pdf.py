"""Invoice PDFs against a bare WeasyPrint render (`make bench`); never part of the test suite. See bench/README.md.

1. Creates a fresh PostgreSQL database (default pictor_bench_pdf), migrates it and issues one
   document of each shape the Billing area prints, through invoices.services.invoice_issue: a
   purchase with its volume discount, coupon and credit lines, a renewal with its service period, a
   top-up, and a credit note naming the invoice it corrects.
2. In this one process, warm (every renderer has rendered twice first), in --rounds rounds that take
   turns so a change in the machine's load hits them alike, each round one render of each:
   - bare, WeasyPrint's own call: `HTML(string=<a short fixed page>).write_pdf()`, nothing added;
   - bare floor: the same page with the invoice renderer's own savings (a URL fetcher that fetches
     nothing, so no SSL context is built; the thread's font configuration reused): the cheapest
     one-page render there is;
   - the invoice PDF (`invoices.pdf.invoice_pdf`: the Factur-X XML checked against its XSD, PDF/A-3b,
     the XML attached), the four documents in turn;
   - the cached PDF (`invoice_pdf_cached`, what the Billing tab and the finance area serve: an issued
     invoice is rendered once).
   Reported: the median wall time and the median thread CPU time of each; the invoice ÷ bare (goal
   ≤ 1.5) and ÷ bare floor (reported against the same goal), the cached read ÷ a render (goal ≤ 0.1).
3. Writes bench/results/pdf.json ({"figures": [...], "loadavg", details}) and drops the database,
   also on errors, Ctrl-C and SIGTERM.
"""

import argparse
import datetime
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as base  # noqa: E402  (bench/run.py: database and environment helpers)

GOAL = 1.5  # invoice PDF ÷ bare PDF
CACHED_GOAL = 0.1  # a cached PDF ÷ a render
BARE_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Bare page</title></head>
<body><h1>Invoice</h1><p>A short fixed page: one heading, one paragraph and a table of one line.</p>
<table><tr><td>One item</td><td>$10.00</td></tr></table></body></html>"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"),
                        help="PostgreSQL server URL without a database name (env BENCH_PG_URL)")
    parser.add_argument("--db", default="pictor_bench_pdf", help="database to create and drop (must contain 'bench')")
    parser.add_argument("--rounds", type=int, default=40, help="rounds; each renders every kind of PDF once")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    args = parser.parse_args()
    if "bench" not in args.db:
        parser.error("--db must contain 'bench': the database is dropped at the end")
    if not 5 <= args.rounds <= 10_000:
        parser.error("--rounds 5-10000")
    return args


# --- what is measured (bench/finance.py uses the bare renders too) ----------------------------------

def _refuse(url, *args, **kwargs):
    raise ValueError(f"the bare page loads nothing: {url}")


def bare_pdf() -> bytes:
    """A one-page WeasyPrint render of a short fixed page, as WeasyPrint's documentation writes it."""
    from weasyprint import HTML

    return HTML(string=BARE_HTML).write_pdf()


def bare_floor_pdf() -> bytes:
    """The same page with the savings the invoice renderer makes: no URL fetcher (no SSL context built)
    and this thread's font configuration reused (invoices.pdf keeps one per thread)."""
    from weasyprint import HTML

    from invoices.pdf import _renderer

    return HTML(string=BARE_HTML, url_fetcher=_refuse).write_pdf(font_config=_renderer().font_config)


def timed(function, *args) -> tuple[float, float]:
    """(wall seconds, this thread's CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.thread_time()
    function(*args)
    return time.perf_counter() - wall, time.thread_time() - cpu


def figure(name, value, unit, goal, met, *, baseline_name=None, baseline=None, ratio=None) -> dict:
    """One row of `make bench`'s table (the shape every bench script writes)."""
    return {"name": name, "value": value, "unit": unit, "baseline_name": baseline_name, "baseline": baseline,
            "ratio": ratio, "goal": goal, "met": bool(met)}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- the documents -------------------------------------------------------------------------------------

def seed() -> list:
    """One document of each shape, issued the way the Billing area issues them; with their lines."""
    from django.core.management import call_command
    from django.db import transaction

    from accounts.models import Account
    from invoices.models import Invoice
    from invoices.services import invoice_issue
    from pictor_billing.pricing import QuoteLine

    call_command("migrate", interactive=False, verbosity=0)
    account = Account.objects.create(name="Bench Events GmbH", address_line1="Friedrichstraße 68",
                                     postal_code="10117", city="Berlin", country="Germany", vat_id="DE123456789",
                                     billing_email="accounts@bench-events.example")
    today = datetime.date.today()

    def issue(kind, description, lines, *, credit=Decimal("0.00"), status=Invoice.PAID, **extra):
        quote_lines = [QuoteLine(k, text, qty, Decimal(unit), Decimal(amount)) for k, text, qty, unit, amount in lines]
        total = sum((line.amount for line in quote_lines), Decimal("0.00"))
        with transaction.atomic():
            return invoice_issue(account=account, kind=kind, description=description, lines=quote_lines,
                                 subtotal=quote_lines[0].amount, discount_total=Decimal("0.00"),
                                 credit_applied=credit, total=total, status=status, issued_on=today, **extra)

    purchase = issue(Invoice.PURCHASE, "License purchase: 6 Pro licenses, monthly", [
        ("list_subtotal", "6 × Pro license, monthly", 6, "99.00", "594.00"),
        ("prorata_adjustment", "Pro-rata adjustment: 17 of 31 days", 1, "-268.26", "-268.26"),
        ("volume_discount", "Volume discount 10%", 1, "-32.57", "-32.57"),
        ("coupon_discount", "Coupon WELCOME10 (10%)", 1, "-29.32", "-29.32"),
        ("volume_adjustment", "Volume discount adjustment: 4 licenses now at 10%", 1, "-18.40", "-18.40"),
        ("credit_applied", "Credit balance applied", 1, "-25.00", "-25.00")], credit=Decimal("25.00"))
    renewal = issue(Invoice.RENEWAL, "Renewal of 6 Pro licenses, monthly", [
        ("list_subtotal", "6 × Pro license, monthly", 6, "99.00", "594.00"),
        ("volume_discount", "Volume discount 10%", 1, "-59.40", "-59.40")],
        service_from=today, service_to=today + datetime.timedelta(days=30))
    top_up = issue(Invoice.TOP_UP, "Token top-up: Standard", [("item", "Standard: 500 tokens", 1, "45.00", "45.00")])
    credit_note = issue(Invoice.CREDIT_NOTE, "Credit for a cancelled license", [
        ("credit", "Credit for cancelled license: 12 unused days of Pro monthly", 1, "-38.32", "-38.32")],
        status=Invoice.CREDITED, refers_to=purchase)
    return list(Invoice.objects.filter(pk__in=[d.pk for d in (purchase, renewal, top_up, credit_note)])
                .select_related("refers_to").prefetch_related("lines").order_by("pk"))


# --- main ----------------------------------------------------------------------------------------------

def measure(documents: list, rounds: int) -> dict:
    from invoices.pdf import invoice_pdf, invoice_pdf_cached

    renderers = {
        "bare": lambda n: bare_pdf(),
        "bare_floor": lambda n: bare_floor_pdf(),
        "invoice": lambda n: invoice_pdf(documents[n % len(documents)]),
        "cached": lambda n: invoice_pdf_cached(documents[n % len(documents)]),
    }
    for render in renderers.values():  # warm: imports, fonts, the stylesheet, the XSD, the cache files
        for n in range(len(documents)):
            render(n)
    samples = {name: [] for name in renderers}
    for n in range(rounds):
        for name, render in renderers.items():
            samples[name].append(timed(render, n))
    return {name: {"wall_ms": round(statistics.median(s[0] for s in got) * 1000, 2),
                   "cpu_ms": round(statistics.median(s[1] for s in got) * 1000, 2),
                   "samples": len(got)} for name, got in samples.items()}


def report_figures(timings: dict) -> list[dict]:
    invoice, bare, floor, cached = (timings[k]["wall_ms"] for k in ("invoice", "bare", "bare_floor", "cached"))
    return [
        figure("invoice PDF (warm)", invoice, "ms", f"≤ {GOAL}× bare", invoice / bare <= GOAL,
               baseline_name="bare WeasyPrint render", baseline=bare, ratio=round(invoice / bare, 2)),
        figure("invoice PDF vs the cheapest bare render", invoice, "ms", f"≤ {GOAL}× bare floor",
               invoice / floor <= GOAL, baseline_name="bare render, no fetcher, fonts reused", baseline=floor,
               ratio=round(invoice / floor, 2)),
        figure("cached invoice PDF", cached, "ms", f"≤ {CACHED_GOAL}× a render", cached / invoice <= CACHED_GOAL,
               baseline_name="invoice PDF render", baseline=invoice, ratio=round(cached / invoice, 3)),
    ]


def main() -> int:
    args = parse_args()
    os.environ.update(DATABASE_URL=f"{args.pg.rstrip('/')}/{args.db}", DEBUG="0",
                      LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
                      DJANGO_SETTINGS_MODULE="pictor_billing.settings")
    base.RESULTS.mkdir(parents=True, exist_ok=True)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    created = False
    before = loadavg()
    try:
        print(f"creating database {args.db} ...", flush=True)
        base.database_create(args.pg, args.db)
        created = True
        base.django_setup()
        from django.conf import settings

        with tempfile.TemporaryDirectory(prefix="pictor-bench-pdf-") as cache:
            settings.FINANCE_PDF_CACHE = cache  # a cache of its own: the cold renders really render
            documents = seed()
            print(f"rendering: {args.rounds} rounds of bare, bare floor, invoice and cached PDFs ...", flush=True)
            timings = measure(documents, args.rounds)
        report = {"when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                  "figures": report_figures(timings), "timings": timings,
                  "documents": [d.number for d in documents], "config": {"rounds": args.rounds, "cpus": os.cpu_count()},
                  "loadavg": {"before": before, "after": loadavg()}}
        (base.RESULTS / "pdf.json").write_text(json.dumps(report, indent=2) + "\n")
        print_table(report)
        return 0
    finally:
        if created and not args.keep_db:
            from django.db import connections

            connections.close_all()
            base.database_drop(args.pg, args.db)
            print(f"dropped database {args.db}", flush=True)


def print_table(report: dict) -> None:
    print()
    print(f"{'':<26}{'wall ms':>9}{'cpu ms':>9}")
    for name, timing in report["timings"].items():
        print(f"{name:<26}{timing['wall_ms']:>9.2f}{timing['cpu_ms']:>9.2f}")
    for f in report["figures"]:
        print(f"{f['name']}: {f['value']:.2f} {f['unit']} = {f['ratio']}× {f['baseline_name']} "
              f"({f['baseline']:.2f}); goal {f['goal']}: {'met' if f['met'] else 'NOT met'}")
    print(f"load average before {report['loadavg']['before']}, after {report['loadavg']['after']}")
    print(f"written: {base.RESULTS / 'pdf.json'}")


if __name__ == "__main__":
    sys.exit(main())
