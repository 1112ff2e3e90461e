"""Browser fixtures: Debian's Chromium driven by Playwright against pytest-django's live server.

Chromium is the system one (/usr/bin/chromium); `playwright install` is never needed or run.
Without it the browser tests are skipped, except under CI=true, where that is a failure.
"""

import os
import shutil
from decimal import Decimal

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


@pytest.fixture(scope="package")
def browser():
    """One headless Chromium for the browser tests.

    Playwright's sync API keeps an asyncio loop running in the test thread while it is started,
    and Django then refuses ORM calls from that thread (seeding data, checking results, flushing
    the database), which are plain synchronous calls here: DJANGO_ALLOW_ASYNC_UNSAFE allows them.
    Both are limited to this package, so tests elsewhere keep Django's check and a loop-free thread.
    """
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        message = (f"Debian's Chromium is not installed at {CHROMIUM}; the browser tests need it. "
                   "Install it with: sudo apt-get install chromium (never `playwright install`).")
        if _in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is a dev dependency
        message = "The playwright Python package is missing; run `make test` to install the dev dependencies."
        if _in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _traced(request, context):
    """With BROWSER_TRACE_DIR set, keep a Playwright trace of each failed test there
    (open it with `python -m playwright show-trace FILE`)."""
    trace_dir = os.environ.get("BROWSER_TRACE_DIR")
    if trace_dir:
        context.tracing.start(screenshots=True, snapshots=True, sources=False)
    yield context
    if trace_dir:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            os.makedirs(trace_dir, exist_ok=True)
            context.tracing.stop(path=os.path.join(trace_dir, f"{request.node.name}.zip"))
        else:
            context.tracing.stop()
    context.close()


@pytest.fixture
def context(request, browser, live_server):
    """A fresh browser profile (cookies, storage) per test, pointed at the live server."""
    yield from _traced(request, browser.new_context(base_url=live_server.url, accept_downloads=True))


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture
def no_js_context(request, browser, live_server):
    """A browser profile with JavaScript switched off: every page must work as plain HTML forms."""
    yield from _traced(request, browser.new_context(base_url=live_server.url, java_script_enabled=False))


@pytest.fixture
def catalogue(transactional_db):
    """What an admin would have set up: the price list of docs/rules.md, token packages and two coupons.

    live_server runs in another thread, so the data must really be committed (transactional_db).
    """
    from licenses.models import Coupon
    from tests.factories import CouponFactory, packages_seed, price_list_seed

    price_list_seed()
    packages = packages_seed()
    coupons = {
        "WELCOME10": CouponFactory(code="WELCOME10", kind=Coupon.PERCENT, value=Decimal("10"),
                                   combines_with_volume=True),
        "FLAT50": CouponFactory(code="FLAT50", kind=Coupon.FIXED, value=Decimal("50"),
                                combines_with_volume=False),
    }
    return {"packages": packages, "coupons": coupons}


@pytest.fixture
def pdftotext():
    path = shutil.which("pdftotext") or ("/usr/bin/pdftotext" if os.path.exists("/usr/bin/pdftotext") else None)
    if path is None:
        message = "pdftotext (Debian package poppler-utils) is needed to read the invoice PDF."
        if _in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path
from tests.stripe.conftest import localstripe, stripe_on  # noqa: E402,F401  (the Stripe emulator, for test_stripe_flow)
