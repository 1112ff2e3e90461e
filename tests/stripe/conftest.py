"""A real Stripe emulator for the gateway's tests: localstripe, started on a free loopback port for the
session and stopped at its end (nothing beyond loopback; `.ci/run` needs nothing more).

`stripe_on` switches one test to PAYMENT_GATEWAY=stripe against it; `browser_card` does what
Stripe.js does in the browser (create the PaymentMethod from the card and confirm the SetupIntent).
"""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import stripe

BOOT_TIMEOUT = 30  # seconds; only ever reached when localstripe cannot start


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory):
    """The emulator's base URL."""
    port = _free_port()
    log = (tmp_path_factory.mktemp("localstripe") / "localstripe.log").open("w")
    binary = Path(sys.executable).with_name("localstripe")
    process = subprocess.Popen([str(binary), "--port", str(port), "--from-scratch"], stdout=log,
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + BOOT_TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"localstripe did not start (see {log.name})")
            time.sleep(0.05)  # polling a port until it opens, not timing a test
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@pytest.fixture
def stripe_on(settings, localstripe):
    """This test's payments go to Stripe (the emulator), test keys."""
    settings.PAYMENT_GATEWAY = "stripe"
    settings.STRIPE_SECRET_KEY = "sk_test_localstripe"
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_localstripe"
    settings.STRIPE_API_BASE = localstripe
    settings.STRIPE_JS_URL = f"{localstripe}/js.stripe.com/v3/"
    return stripe.StripeClient("sk_test_localstripe", base_addresses={"api": localstripe}, max_network_retries=0)


def browser_card(client, client_secret: str, number: str, *, exp_month=12, exp_year=2031) -> str:
    """What Stripe.js does for the card Element: confirm the SetupIntent with the card typed in. The
    SetupIntent's id (what the form then posts); raises stripe.CardError when the card is refused."""
    setup_id = client_secret.split("_secret_")[0]
    method = client.v1.payment_methods.create(params={"type": "card", "card": {
        "number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": "123"}})
    intent = client.v1.setup_intents.confirm(setup_id, params={"payment_method": method.id})
    if intent.status == "requires_action":  # 3-D Secure when saved: the cardholder completes it
        client.v1.setup_intents.confirm(setup_id, params={})
    return setup_id
