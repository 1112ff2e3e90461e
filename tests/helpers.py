"""Small helpers shared by the view tests: CSRF-honest posts, form tokens, and a snapshot of the books.

Every POST goes through the CSRF-enforcing client from conftest's `logged_in`, with the token a browser
would send (the csrftoken cookie echoed in the X-CSRFToken header, as base.html's hx-headers does).
"""

import re
import uuid
from contextlib import contextmanager
from decimal import Decimal

from accounts.models import Account
from billing.purchase import license_purchase
from invoices.models import Invoice, InvoiceSequence
from licenses.models import CouponRedemption, License, Purchase
from payments.models import Card, CreditEntry, PaymentAttempt
from payments.sandbox import SandboxGateway
from tokens.models import TokenEntry, TopUp

ADD_URL = "/billing/licenses/add/"
SUMMARY_URL = "/billing/licenses/summary/"
TOP_UP_URL = "/billing/tokens/top-up/"
TOP_UP_SUMMARY_URL = "/billing/tokens/top-up/summary/"
HTMX = {"HX-Request": "true"}


def csrf_token(client) -> str:
    """The CSRF token this client's browser would send, fetching a page that sets the cookie if needed."""
    if "csrftoken" not in client.cookies:
        for url in ("/billing/licenses/", "/login/"):
            client.get(url)
            if "csrftoken" in client.cookies:
                break
    return client.cookies["csrftoken"].value


def post(client, url, data=None, *, htmx=False, target=None, follow=False):
    """POST as the page's form would: with the CSRF token, and as HTMX when asked."""
    headers = {"X-CSRFToken": csrf_token(client)}
    if htmx:
        headers["HX-Request"] = "true"
    if target:
        headers["HX-Target"] = target
    return client.post(url, data or {}, headers=headers, follow=follow)


def form_token(client, url=ADD_URL) -> str:
    """The one-time token of a freshly opened purchase (or top-up) form."""
    response = client.get(url, headers=HTMX)
    assert response.status_code == 200, response.content[:500]
    match = re.search(r'name="token" value="([^"]+)"', response.content.decode())
    assert match, "the form carries no one-time token"
    return match.group(1)


def purchase_data(*, tier="pro", period="monthly", quantity=1, coupon="", token=None, **extra) -> dict:
    data = {"tier": tier, "period": period, "quantity": quantity, "coupon": coupon, **extra}
    if token is not None:
        data["token"] = token
    return data


def shown_digest(response) -> str:
    """The signed digest of the order a summary shows (what its pay button posts back)."""
    match = re.search(r'name="quote" value="([^"]*)"', response.content.decode())
    assert match, "the summary carries no quote digest"
    return match.group(1)


def order_data(client, **choices) -> dict:
    """What the purchase form posts once its summary shows these choices: the choices, its one-time
    token and the signed digest of the order shown."""
    data = purchase_data(token=form_token(client), **choices)
    digest = shown_digest(summary(client, **{k: v for k, v in data.items() if k != "token"}))
    return {**data, "quote": digest}


def buy(client, *, htmx=False, follow=False, **choices):
    """Open the purchase form, let the summary show these choices, and pay for what it shows."""
    return post(client, ADD_URL, order_data(client, **choices), htmx=htmx, follow=follow)


def top_up_data(client, package, **extra) -> dict:
    """What the Top Up form posts for this package once its summary is on screen (token and digest)."""
    token = form_token(client, TOP_UP_URL)
    data = {"package": package.pk, "token": token, **extra}
    shown = post(client, TOP_UP_SUMMARY_URL, data, htmx=True)
    return {**data, "quote": shown_digest(shown)}


def summary(client, **params):
    """The Order Summary fragment, as the modal refreshes it on every change."""
    return client.get(SUMMARY_URL, params, headers=HTMX)


def summary_figure(response, name="total_due") -> Decimal:
    """One figure of the Order Summary, as its element's value says (signed: discounts and credits are
    negative, as the summary shows them)."""
    match = re.search(rf'<data value="([^"]+)" data-summary="{name}"', response.content.decode())
    assert match, f"the summary shows no {name}"
    return Decimal(match.group(1))


def summary_shows(response, name) -> bool:
    """Whether the summary has a line for this figure (a step that does not apply is not shown)."""
    return f'data-summary="{name}"' in response.content.decode()


def token_balance_shown(client, url="/billing/licenses/") -> int:
    """The token balance at the top right of a Billing tab."""
    match = re.search(r'data-token-balance="(-?\d+)"', client.get(url).content.decode())
    assert match, "the Billing header shows no token balance"
    return int(match.group(1))


def clock_set(account, moment) -> None:
    """Stand the account's clock at `moment` (None: real time again), as a test clock would."""
    Account.objects.filter(pk=account.pk).update(clock_frozen_at=moment)
    account.clock_frozen_at = moment


@contextmanager
def clock_at(account, moment):
    """The account's clock stands at `moment` inside the block (nothing changes with None)."""
    if moment is None:
        yield
        return
    before = account.clock_frozen_at
    clock_set(account, moment)
    try:
        yield
    finally:
        clock_set(account, before)


def buy_directly(account, user=None, *, now=None, **choices):
    """A completed purchase through the service (the way a finished form post makes one), at `now`
    on the account's clock when given."""
    choices = {"tier": "pro", "period": "monthly", "quantity": 1, **choices}
    with clock_at(account, now):
        purchase, created = license_purchase(account=account, user=user, token=uuid.uuid4().hex, **choices)
    assert created
    return purchase


def books() -> dict:
    """Everything a purchase, top-up or card action could have written, counted."""
    return {
        "licenses": License.objects.count(),
        "purchases": Purchase.objects.count(),
        "invoices": Invoice.objects.count(),
        "invoice numbers used": sum(InvoiceSequence.objects.values_list("last_number", flat=True)),
        "charges": charges().count(),
        "money held or taken at the processor": processor_money(),
        "coupon redemptions": CouponRedemption.objects.count(),
        "credit entries": CreditEntry.objects.count(),
        "token entries": TokenEntry.objects.count(),
        "top-ups": TopUp.objects.count(),
        "cards": sorted(Card.objects.values_list("pk", "is_default")),
        "license states": sorted(License.objects.values_list("pk", "status", "cancel_at_period_end", "tier",
                                                             "next_tier")),
    }


def charges(**filters):
    """Money taken from cards, as our books record it: succeeded payment attempts (refunds aside)."""
    return PaymentAttempt.objects.filter(status=PaymentAttempt.SUCCEEDED,
                                         kind__in=[PaymentAttempt.AUTHORIZE, PaymentAttempt.CHARGE], **filters)


def charge_of(invoice):
    """The attempt that took the money for this invoice, or None."""
    return charges(invoice=invoice).first()


def processor_money() -> int:
    """Cents the sandbox processor holds or has taken, as its own books say (refunds deducted)."""
    return sum(payment["amount"] - payment["amount_refunded"] for payment in SandboxGateway().payments()
               if payment["status"] in ("authorized", "succeeded", "refunded"))


def text(response) -> str:
    return response.content.decode()
