"""Plan changes through the Licenses tab, on a test clock: the upgrade modal's live summary and what
paying it does to the books; downgrades scheduled, undone, and applied at renewal; refusals.

Prices (SPEC): Basic $49 / $490, Pro $99 / $990, Premium $149 / $1,490. The clock starts on Mar 1,
2027: monthly licenses renew on the 1st, and March has 31 days.
"""

import datetime
import re
from decimal import Decimal

import pytest

from billing.clocks import clock_advance, clock_attach
from billing.models import Renewal
from invoices.models import Invoice
from licenses.models import EventLease, License, LicenseTerm, PlanChange
from licenses.services import event_start
from payments.models import CreditEntry, PaymentAttempt
from payments.services import card_make_default, credit_balance
from tests.conftest import DECLINES_CHARGES, VISA, add_card
from tests.helpers import buy_directly, post, processor_money, summary_figure, text

D = Decimal
UTC = datetime.UTC
CHANGE = "/billing/licenses/change/"
SUMMARY = "/billing/licenses/change/summary/"
HTMX = {"HX-Request": "true"}


def at(day, hour=9):
    return datetime.datetime(2027, 3, day, hour, tzinfo=UTC) if isinstance(day, int) else day


@pytest.fixture
def owner(prices, alice):
    """Alice's account on a test clock at Mar 1, 2027 with a Visa."""
    clock_attach(account=alice.account, start=at(1))
    alice.account.refresh_from_db()
    add_card(alice.account, VISA)
    return alice


def advance(account, to):
    clock_advance(account=account, to=to)
    account.refresh_from_db()


def modal(client, *licenses, **choices):
    return client.get(CHANGE, {"license": [lic.pk for lic in licenses], **choices}, headers=HTMX)


def form_of(response) -> dict:
    """The change form's fields as the page renders them (hidden token, licenses, the checked radios, digest)."""
    body = response.content.decode()
    data = {"license": re.findall(r'name="license" value="(\d+)"', body)}
    data["token"] = re.search(r'name="token" value="([^"]*)"', body).group(1)
    for name in ("tier", "period"):
        data[name] = re.search(rf'name="{name}" value="(\w+)" checked', body).group(1)
    digest = re.search(r'name="quote" value="([0-9a-f]*)"', body)
    data["quote"] = digest.group(1) if digest else ""
    return data


def pay(client, licenses, **choices):
    """Open the modal, choose, let the summary refresh, and pay what it shows."""
    data = form_of(modal(client, *licenses))
    data.update(choices)
    shown = post(client, SUMMARY, data, htmx=True)
    data["quote"] = re.search(r'name="quote" value="([0-9a-f]*)"', shown.content.decode()).group(1)
    return post(client, CHANGE, data, follow=True), shown


def test_upgrade_on_day_11_of_31_credits_the_unused_share_and_charges_the_new_tier(alice_client, owner):
    account = owner.account
    lic = License.objects.get(purchase=buy_directly(account, owner, tier="pro", period="monthly"))
    advance(account, at(11))  # 21 of 31 days left
    response, shown = pay(alice_client, [lic], tier="premium", period="monthly")

    # Credit min($99, $99) × 21/31 = $67.06; Premium $149 × 21/31 = $100.94; total $33.88.
    assert summary_figure(shown, "credit_unused") == D("-67.06")
    assert summary_figure(shown, "charge_new") == D("100.94")
    assert summary_figure(shown, "credit_applied") == D("0.00")
    assert summary_figure(shown, "total_due") == D("33.88")
    assert "Pay $33.88 with Visa ending 4242" in text(shown)

    body = text(response)
    assert "Upgrade complete: Upgrade of 1 license to Premium monthly" in body
    assert "$33.88 charged to Visa ending 4242" in body
    invoice = PlanChange.objects.get().invoice
    assert (invoice.kind, invoice.status, invoice.total, invoice.subtotal) == (
        Invoice.CHANGE, Invoice.PAID, D("33.88"), D("100.94"))
    assert [(line.kind, line.amount) for line in invoice.lines.all()] == [
        ("credit_unused", D("-67.06")), ("charge_new", D("100.94"))]
    lic.refresh_from_db()
    assert (lic.tier, lic.period, lic.period_end, lic.list_price) == ("premium", "monthly", datetime.date(2027, 4, 1),
                                                                       D("149.00"))
    # The credit went to the ledger and was used at once: the balance is back to zero.
    assert list(CreditEntry.objects.filter(invoice=invoice).values_list("kind", "amount").order_by("kind")) == [
        (CreditEntry.APPLIED, D("-67.06")), (CreditEntry.UPGRADE_CREDIT, D("67.06"))]
    assert credit_balance(account) == 0
    assert processor_money() == 9900 + 3388

    # The next renewal, Apr 1, is at the new tier: $149.00.
    advance(account, at(datetime.datetime(2027, 4, 1, 12, tzinfo=UTC)))
    renewal = Renewal.objects.get(account=account, billing_date=datetime.date(2027, 4, 1))
    assert (renewal.status, renewal.invoice.total) == (Renewal.PAID, D("149.00"))
    assert LicenseTerm.objects.filter(license=lic).latest("starts_on").tier == "premium"


def test_two_licenses_upgraded_together_make_one_invoice(alice_client, owner):
    account = owner.account
    first = list(License.objects.filter(purchase=buy_directly(account, owner, tier="basic", quantity=2)))
    advance(account, at(11))
    response, shown = pay(alice_client, first, tier="pro", period="monthly")
    # Each: credit $49 × 21/31 = $33.19, charge $99 × 21/31 = $67.06; two of each: −$66.38 + $134.12 = $67.74.
    assert summary_figure(shown, "credit_unused") == D("-66.38")
    assert summary_figure(shown, "charge_new") == D("134.12")
    assert summary_figure(shown, "total_due") == D("67.74")
    change = PlanChange.objects.get()
    assert change.invoice.total == D("67.74") and change.licenses.count() == 2
    assert set(License.objects.filter(account=account).values_list("tier", flat=True)) == {"pro"}


def test_monthly_to_annual_mid_cycle_leaves_the_monthly_group_and_clears_the_anchor(alice_client, owner):
    account = owner.account
    lic = License.objects.get(purchase=buy_directly(account, owner))
    assert account.__class__.objects.get(pk=account.pk).monthly_anchor_day == 1
    advance(account, at(11))
    response, shown = pay(alice_client, [lic], tier="pro", period="annual")
    # Credit $67.06; Pro annual $990.00 from today; total $922.94.
    assert summary_figure(shown, "total_due") == D("922.94")
    assert "renew together every year from <time datetime=\"2028-03-11\">Mar 11, 2028</time>" in text(shown)
    lic.refresh_from_db()
    assert (lic.period, lic.period_start, lic.period_end) == ("annual", datetime.date(2027, 3, 11),
                                                              datetime.date(2028, 3, 11))
    assert lic.group.period == "annual"
    account.refresh_from_db()
    assert account.monthly_anchor_day is None, "the last monthly license left: the anchor is cleared"


def test_a_license_bought_with_a_100_percent_coupon_mints_no_credit(alice_client, owner):
    from licenses.models import Coupon

    account = owner.account
    Coupon.objects.create(code="FREE", kind=Coupon.PERCENT, value=100)
    lic = License.objects.get(purchase=buy_directly(account, owner, coupon_code="FREE"))
    advance(account, at(11))
    response, shown = pay(alice_client, [lic], tier="premium", period="monthly")
    assert 'data-summary="credit_unused"' in shown.content.decode()
    assert summary_figure(shown, "credit_unused") == D("0.00")
    assert summary_figure(shown, "total_due") == D("100.94")
    assert not CreditEntry.objects.filter(kind=CreditEntry.UPGRADE_CREDIT).exists()


def test_a_summary_that_changed_charges_nothing(alice_client, owner):
    account = owner.account
    lic = License.objects.get(purchase=buy_directly(account, owner))
    advance(account, at(11))
    data = form_of(modal(alice_client, lic, tier="premium", period="monthly"))
    data["tier"] = "premium"  # the digest on screen was for the suggested change; the total now differs
    shown = post(alice_client, SUMMARY, {**data, "tier": "premium"}, htmx=True)
    data["quote"] = re.search(r'name="quote" value="([0-9a-f]*)"', shown.content.decode()).group(1)
    advance(account, at(12))  # a day later the share is 20/31: not what was shown
    attempts = PaymentAttempt.objects.count()
    response = post(alice_client, CHANGE, data)
    assert response.status_code == 409
    assert "The total changed" in text(response) and "Nothing was charged" in text(response)
    assert PaymentAttempt.objects.count() == attempts and not PlanChange.objects.exists()


def test_paying_twice_charges_once(alice_client, owner):
    account = owner.account
    lic = License.objects.get(purchase=buy_directly(account, owner))
    advance(account, at(11))
    data = form_of(modal(alice_client, lic))
    shown = post(alice_client, SUMMARY, data, htmx=True)
    data["quote"] = re.search(r'name="quote" value="([0-9a-f]*)"', shown.content.decode()).group(1)
    post(alice_client, CHANGE, data)
    response = post(alice_client, CHANGE, data, follow=True)
    assert "already made" in text(response)
    assert PlanChange.objects.count() == 1 and processor_money() == 9900 + 3388


def test_a_declined_card_changes_nothing(alice_client, owner):
    account = owner.account
    lic = License.objects.get(purchase=buy_directly(account, owner))
    card_make_default(account=account, card=add_card(account, DECLINES_CHARGES))
    advance(account, at(11))
    response, _ = pay(alice_client, [lic], tier="premium", period="monthly")
    assert "Your card was declined. Nothing was charged." in text(response)
    lic.refresh_from_db()
    assert lic.tier == "pro" and not PlanChange.objects.exists() and not Invoice.objects.filter(kind="change")


@pytest.mark.parametrize(("state", "says"), [
    ("cancelling", "is cancelling. Undo the cancellation first."),
    ("past_due", "is past due. Pay its renewal first."),
    ("due_today", "renews today. Change it once it has renewed."),
])
def test_no_change_on_a_license_cancelling_past_due_or_due_today(alice_client, owner, state, says):
    account = owner.account
    lic = License.objects.get(purchase=buy_directly(account, owner))
    if state == "cancelling":
        License.objects.filter(pk=lic.pk).update(cancel_at_period_end=True)
    elif state == "past_due":
        License.objects.filter(pk=lic.pk).update(status=License.PAST_DUE)
    else:
        License.objects.filter(pk=lic.pk).update(period_end=datetime.date(2027, 3, 1))
    data = form_of(modal(alice_client, lic))
    for tier, period in (("premium", "monthly"), ("basic", "monthly")):
        response = post(alice_client, CHANGE, {**data, "tier": tier, "period": period})
        assert response.status_code == 409, (tier, period)
        assert says in text(response)
    lic.refresh_from_db()
    assert (lic.tier, lic.next_tier) == ("pro", "") and not PaymentAttempt.objects.filter(purpose="change")


def test_another_accounts_license_or_a_posted_price_is_refused(alice_client, owner, charlie):
    add_card(charlie.account)
    theirs = License.objects.get(purchase=buy_directly(charlie.account, charlie))
    mine = License.objects.get(purchase=buy_directly(owner.account, owner))
    data = form_of(modal(alice_client, mine))
    assert post(alice_client, CHANGE, {**data, "license": [theirs.pk]}).status_code == 400
    assert post(alice_client, CHANGE, {**data, "total_due": "0.01"}).status_code == 400
    assert post(alice_client, CHANGE, {**data, "license": ["x" * 300]}).status_code == 400
    assert post(alice_client, CHANGE, {**data, "tier": "gold"}).status_code == 400
    assert alice_client.get(f"{CHANGE}?license={theirs.pk}").status_code == 302
    theirs.refresh_from_db()
    assert theirs.tier == "pro" and not PlanChange.objects.exists()


def test_a_downgrade_is_scheduled_undone_and_rescheduled_without_money_moving(alice_client, owner):
    account = owner.account
    lic = License.objects.get(purchase=buy_directly(account, owner, tier="premium"))
    advance(account, at(11))
    data = form_of(modal(alice_client, lic))
    shown = post(alice_client, SUMMARY, {**data, "tier": "basic", "period": "monthly"}, htmx=True)
    assert "stays Premium monthly until" in text(shown) and "then renews as Basic monthly" in text(shown)
    response = post(alice_client, CHANGE, {**data, "tier": "basic", "period": "monthly"}, follow=True)
    assert "will renew as Basic monthly on Apr 1, 2027" in text(response)
    assert "as Basic monthly" in text(alice_client.get("/billing/licenses/"))
    lic.refresh_from_db()
    assert (lic.tier, lic.next_tier, lic.next_period) == ("premium", "basic", "monthly")
    # The next-renewal line already says the new price.
    assert "$49.00" in text(alice_client.get("/billing/licenses/"))

    response = post(alice_client, f"/billing/licenses/{lic.pk}/undo-change/", follow=True)
    assert "will renew as Premium monthly, as it is now" in text(response)
    lic.refresh_from_db()
    assert lic.next_tier == ""
    assert post(alice_client, f"/billing/licenses/{lic.pk}/undo-change/").status_code == 409
    assert not PaymentAttempt.objects.filter(purpose="change").exists()


def test_a_downgrade_happens_at_renewal_and_a_live_event_keeps_running(alice_client, owner):
    account = owner.account
    lic = License.objects.get(purchase=buy_directly(account, owner, tier="premium"))
    lease, _ = event_start(account=account, event_id="gala", event_tier="premium", device_id="booth-1")
    advance(account, at(11))
    data = form_of(modal(alice_client, lic))
    post(alice_client, CHANGE, {**data, "tier": "basic", "period": "monthly"})
    advance(account, datetime.datetime(2027, 4, 1, 12, tzinfo=UTC))
    renewal = Renewal.objects.get(account=account, billing_date=datetime.date(2027, 4, 1))
    assert (renewal.status, renewal.invoice.total) == (Renewal.PAID, D("49.00"))
    lic.refresh_from_db()
    assert (lic.tier, lic.period, lic.next_tier, lic.list_price) == ("basic", "monthly", "", D("49.00"))
    assert EventLease.objects.get(pk=lease.pk).stopped_at is None, "the live event is never cut off"
    # New events follow the new tier.
    from licenses.services import LicenseTierNeeded

    with pytest.raises(LicenseTierNeeded):
        event_start(account=account, event_id="next", event_tier="premium", device_id="booth-2")


def test_annual_to_monthly_joins_the_anchor_pro_rata_at_renewal(alice_client, owner):
    account = owner.account
    buy_directly(account, owner)  # a Pro monthly: anchor day 1
    advance(account, at(16))
    annual = License.objects.get(purchase=buy_directly(account, owner, tier="basic", period="annual"))
    assert annual.period_end == datetime.date(2028, 3, 16)
    data = form_of(modal(alice_client, annual))
    response = post(alice_client, CHANGE, {**data, "tier": "basic", "period": "monthly"}, follow=True)
    assert "will renew as Basic monthly on Mar 16, 2028" in text(response)
    advance(account, datetime.datetime(2028, 3, 16, 12, tzinfo=UTC))
    renewal = Renewal.objects.get(account=account, billing_date=datetime.date(2028, 3, 16))
    # Mar 16 – Apr 1, 2028: 16 of 31 days of $49.00 = $25.290… → $25.29 (2 active: no bracket).
    assert renewal.invoice.total == D("25.29")
    annual.refresh_from_db()
    assert (annual.period, annual.period_end, annual.group.period) == ("monthly", datetime.date(2028, 4, 1), "monthly")
