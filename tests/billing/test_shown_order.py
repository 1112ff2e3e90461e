"""The shown order is the charged order: the forms that take money carry a signed digest of the
order on screen, and nothing is charged when the server's quote differs in anything."""

import re
from decimal import Decimal

import pytest

from payments.models import CreditEntry
from tests.conftest import logged_in
from tests.helpers import (
    ADD_URL,
    HTMX,
    TOP_UP_SUMMARY_URL,
    TOP_UP_URL,
    books,
    buy_directly,
    form_token,
    order_data,
    post,
    purchase_data,
    shown_digest,
    summary,
    summary_figure,
    text,
    top_up_data,
)

D = Decimal


@pytest.fixture
def client(alice, prices, alice_card):
    return logged_in(alice)


def test_without_javascript_a_quantity_changed_after_update_summary_is_shown_again_not_charged(client):
    # "Update summary" with 1 license, then the person types 48 and presses Pay at once: the
    # page's digest is for 1 license ($99.00), the posted quantity prices $4,277.00 ... nothing is
    # charged, and the new summary is shown with its own pay button.
    token = form_token(client)
    shown = post(client, ADD_URL, purchase_data(token=token, quantity=1, preview="1"))
    before = books()
    response = post(client, ADD_URL, purchase_data(token=token, quantity=48, quote=shown_digest(shown)))
    assert response.status_code == 409
    body = text(response)
    assert "The total changed since it was shown." in body and "Nothing was charged" in body
    assert books() == before
    # 48 × $99.00 = $4,752.00, less 15% = $4,039.20: the summary shows it, and its button pays that.
    assert summary_figure(response) == D("4039.20")
    assert "Pay $4,039.20 with Visa ending 4242" in body
    paid = post(client, ADD_URL, purchase_data(token=token, quantity=48, quote=shown_digest(response)))
    assert paid.status_code == 302


def test_a_posted_order_without_the_digest_of_a_shown_summary_charges_nothing(client):
    before = books()
    for quote in ("", "0" * 64, "forged"):
        response = post(client, ADD_URL, purchase_data(token=form_token(client), quantity=2, quote=quote))
        assert response.status_code == 409
    assert books() == before


def test_a_digest_shown_to_another_account_does_not_pay_this_one(client, charlie):
    from tests.conftest import add_card

    add_card(charlie.account)
    charlie_sees = shown_digest(summary(logged_in(charlie), tier="pro", period="monthly", quantity=1, coupon=""))
    before = books()
    response = post(client, ADD_URL, purchase_data(token=form_token(client), quantity=1, quote=charlie_sees))
    assert response.status_code == 409
    assert books() == before


def test_when_credit_covers_both_totals_a_different_order_is_still_refused(client, alice):
    # $500.00 of credit: one Pro monthly ($99.00) and two ($198.00) both total $0.00 due. Comparing
    # totals would let the second through on the first's button; the digest compares every line.
    CreditEntry.objects.create(account=alice.account, kind=CreditEntry.ADMIN_CREDIT, amount=D("500.00"))
    one = summary(client, tier="pro", period="monthly", quantity=1, coupon="")
    assert summary_figure(one) == 0
    before = books()
    response = post(client, ADD_URL, purchase_data(token=form_token(client), quantity=2, quote=shown_digest(one)))
    assert response.status_code == 409
    assert books() == before


def test_an_order_that_changed_because_another_purchase_landed_is_shown_again(client, alice):
    # The summary showed 1 Pro monthly alone ($99.00); then a teammate bought 4, so this one now
    # reaches the 10% bracket and credits the others: a different order, never charged unseen.
    data = order_data(client, quantity=1)
    buy_directly(alice.account, alice, quantity=4)
    before = books()
    response = post(client, ADD_URL, data)
    assert response.status_code == 409
    assert books() == before
    assert summary_figure(response, "volume_discount") < 0


def test_the_pay_button_names_the_amount_and_the_card_and_the_summary_is_a_post(client):
    modal = text(client.get(ADD_URL, headers=HTMX))
    assert re.search(r'<button class="button button-primary pay-button" type="submit" data-pay-button>'
                     r'Pay \$99\.00 with Visa ending 4242</button>', modal)
    # The live summary is posted, so neither the CSRF token nor the form token lands in a URL.
    assert 'hx-post="/billing/licenses/summary/"' in modal
    assert "hx-get=\"/billing/licenses/summary/" not in modal


def test_top_up_charges_only_the_package_shown(client, alice, packages):
    starter, standard = packages[0], packages[1]
    data = top_up_data(client, starter)  # the summary showed Starter, $10.00
    before = books()
    response = post(client, TOP_UP_URL, {**data, "package": standard.pk})  # Standard chosen, not refreshed
    assert response.status_code == 409
    assert "The total changed since it was shown. It is now $45.00." in text(response)
    assert books() == before


def test_top_up_opens_with_a_package_chosen_and_a_priced_pay_button(client, packages):
    modal = text(client.get(TOP_UP_URL, headers=HTMX))
    assert re.search(rf'name="package" value="{packages[0].pk}" checked', modal)
    assert "Pay $10.00 with Visa ending 4242" in modal
    refreshed = post(client, TOP_UP_SUMMARY_URL, {"package": packages[3].pk, "token": "x"}, htmx=True)
    assert "Pay $350.00 with Visa ending 4242" in text(refreshed)


def test_the_summary_the_invoice_and_the_pdf_read_the_same_lines(client, alice, tmp_path, pdftotext_path):
    import subprocess

    buy_directly(alice.account, alice, quantity=3)  # 3 Pro monthly at 0%
    shown = summary(client, tier="pro", period="monthly", quantity=2, coupon="")
    rows = re.findall(r'<th scope="row">(.*?)</th>\s*<td class="amount"><data value="([^"]+)"', text(shown))
    post(client, ADD_URL, {**purchase_data(token=form_token(client), quantity=2), "quote": shown_digest(shown)})
    invoice = alice.account.invoices.order_by("-sequence").first()
    stored = [(line.description, str(line.amount)) for line in invoice.lines.all()]
    assert [(re.sub(r" <small>.*</small>", "", description), amount) for description, amount in rows[:-1]] == stored
    assert rows[-1] == ("Total due now", str(invoice.total))
    pdf = tmp_path / "invoice.pdf"
    pdf.write_bytes(client.get(f"/billing/invoices/{invoice.number}.pdf").content)
    words = " ".join(subprocess.run([pdftotext_path, str(pdf), "-"], check=True, capture_output=True,
                                    text=True).stdout.split())
    for description, _ in stored:
        assert description in words
    assert "Volume discount adjustment: 3 active licenses move to 10% for the rest of their period" in words
    assert "−$29.70" in words and "$148.50" in words


@pytest.fixture
def pdftotext_path():
    import shutil

    path = shutil.which("pdftotext")
    if path is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    return path
