"""Who may open what: every Billing URL needs a login, shows one account only, and every POST needs CSRF."""

from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from accounts.models import Account, User
from finance.models import ZipJob
from licenses.services import license_cancel, license_change_schedule
from tests.conftest import VISA, add_card, logged_in
from tests.finance.helpers import finance_user_make
from tests.helpers import (
    HTMX,
    TOP_UP_URL,
    books,
    buy_directly,
    csrf_token,
    form_token,
    order_data,
    post,
    purchase_data,
    summary,
    summary_figure,
    summary_shows,
    text,
    top_up_data,
)

MASTERCARD = "5555555555554444"


@pytest.fixture
def world(prices, packages, alice, bob, charlie):
    """Alice's account (bob on her team): two licenses (one cancelling), two cards, an invoice. Charlie's own."""
    default = add_card(alice.account)
    spare = add_card(alice.account, MASTERCARD)
    purchase = buy_directly(alice.account, alice, quantity=2)
    renewing, cancelling = purchase.licenses.order_by("pk")
    license_cancel(account=alice.account, license=cancelling)
    downgrading = buy_directly(alice.account, alice, tier="premium").licenses.get()
    license_change_schedule(account=alice.account, license=downgrading, tier="basic", period="monthly")
    charlie_card = add_card(charlie.account)
    charlie_purchase = buy_directly(charlie.account, charlie)
    finance_staff = finance_user_make()
    zip_job = ZipJob.objects.create(user=finance_staff, filters={"q": purchase.invoice.number}, total=1, done=1,
                                    finished_at=timezone.now())
    return SimpleNamespace(
        finance_staff=finance_staff, zip_job=zip_job,
        default=default, spare=spare, renewing=renewing, cancelling=cancelling, invoice=purchase.invoice,
        downgrading=downgrading,
        package=packages[0], charlie_card=charlie_card, charlie_license=charlie_purchase.licenses.get(),
        charlie_invoice=charlie_purchase.invoice,
    )


def get_urls(w) -> dict[str, str]:
    return {
        "licenses list": "/billing/licenses/",
        "add license": "/billing/licenses/add/",
        "order summary": "/billing/licenses/summary/?period=monthly&tier=pro&quantity=1&coupon=",
        "feature list": "/billing/licenses/features/",
        "payment tab": "/billing/payment/",
        "add card form": "/billing/payment/cards/add/",
        "invoices list": "/billing/invoices/",
        "invoice pdf": f"/billing/invoices/{w.invoice.number}.pdf",
        "top up form": TOP_UP_URL,
        "change plan": f"/billing/licenses/change/?license={w.renewing.pk}",
    }


def post_urls(w) -> dict[str, str]:
    return {
        "cancel": f"/billing/licenses/{w.renewing.pk}/cancel/",
        "undo cancel": f"/billing/licenses/{w.cancelling.pk}/undo-cancel/",
        "make card default": f"/billing/payment/cards/{w.spare.pk}/default/",
        "remove card": f"/billing/payment/cards/{w.spare.pk}/remove/",
        "billing details": "/billing/payment/details/",
        "complete purchase": "/billing/licenses/add/",
        "add card": "/billing/payment/cards/add/",
        "top up": TOP_UP_URL,
        "undo change": f"/billing/licenses/{w.downgrading.pk}/undo-change/",
    }


def valid_data(name, w, client) -> dict:
    """What the page's own form would post to this URL (minus the CSRF token)."""
    if name == "complete purchase":
        return order_data(client)
    if name == "add card":
        return {"number": VISA, "exp_month": 12, "exp_year": 2099, "cvc": "123"}
    if name == "billing details":
        return {"name": "Renamed Ltd", "address_line1": "9 Elsewhere", "city": "Nowhere", "country": "Narnia"}
    if name == "top up":
        return top_up_data(client, w.package)
    return {}


GET_NAMES = list(get_urls(SimpleNamespace(invoice=SimpleNamespace(number="X"), renewing=SimpleNamespace(pk=0))))
POST_NAMES = ["cancel", "undo cancel", "make card default", "remove card", "billing details",
              "complete purchase", "add card", "top up", "undo change"]


def finance_urls(w) -> dict[str, str]:
    """The finance area (finance staff and superusers only), every page of it."""
    return {
        "finance home": "/finance/",
        "finance invoices": "/finance/invoices/",
        "finance invoice search": "/finance/invoices/?q=Alice&status=paid&sort=-total&page=1",
        "finance invoice": f"/finance/invoices/{w.invoice.number}/",
        "finance invoice pdf": f"/finance/invoices/{w.invoice.number}.pdf",
        "finance csv": "/finance/invoices/export.csv?rows=lines",
        "finance zip": f"/finance/invoices/export.zip?q={w.invoice.number}",
        "finance zip progress": f"/finance/exports/zips/{w.zip_job.pk}/",
        "finance zip download": f"/finance/exports/zips/{w.zip_job.pk}/download/",
        "finance receivables": "/finance/receivables/",
        "finance revenue": "/finance/revenue/",
    }


FINANCE_NAMES = list(finance_urls(SimpleNamespace(invoice=SimpleNamespace(number="X"), zip_job=SimpleNamespace(pk=0))))


@pytest.fixture(autouse=True)
def pdf_cache(settings, tmp_path):
    """The finance area's zips cache their PDFs in each test's own folder."""
    settings.FINANCE_PDF_CACHE = str(tmp_path / "pdf-cache")


def account_state(account) -> tuple:
    account = Account.objects.get(pk=account.pk)
    return (account.name, account.address_line1, account.city, account.country, account.monthly_anchor_day)


# Anonymous visitors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GET_NAMES)
def test_an_anonymous_visitor_is_sent_to_log_in_first(world, name):
    url = get_urls(world)[name]
    response = Client().get(url)
    assert response.status_code == 302
    path = url.split("?")[0]
    assert response["Location"].startswith(f"/login/?next={path}")


@pytest.mark.parametrize("name", POST_NAMES)
def test_an_anonymous_post_is_sent_to_log_in_and_changes_nothing(world, name):
    client = Client(enforce_csrf_checks=True)
    before = books()
    response = post(client, post_urls(world)[name], {"package": world.package.pk})
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={post_urls(world)[name]}"
    assert books() == before


@pytest.mark.parametrize("htmx", [False, True], ids=["plain get", "htmx get"])
@pytest.mark.parametrize("name", FINANCE_NAMES)
def test_an_anonymous_visitor_is_sent_to_log_in_before_any_finance_page(world, name, htmx):
    url = finance_urls(world)[name]
    if htmx:
        response = Client().get(url, headers={**HTMX, "HX-Current-URL": f"http://testserver{url}"})
        assert response["HX-Redirect"].startswith("/login/?next=%2Ffinance%2F")
        return
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"/login/?next={url.split('?')[0]}")


def test_the_billing_root_and_home_lead_to_the_licenses_tab(world):
    assert Client().get("/")["Location"] == "/billing/licenses/"
    assert Client().get("/billing/")["Location"] == "/billing/licenses/"


# The account's own users ----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "bob"])
@pytest.mark.parametrize("name", GET_NAMES)
def test_the_owner_and_a_teammate_can_open_every_billing_page(world, request, who, name):
    client = logged_in(request.getfixturevalue(who))
    response = client.get(get_urls(world)[name])
    assert response.status_code == 200
    if name == "invoice pdf":
        assert response["Content-Type"] == "application/pdf"


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_the_owner_and_a_teammate_see_the_accounts_licenses_cards_and_invoices(world, request, who):
    client = logged_in(request.getfixturevalue(who))
    assert f'id="license-{world.renewing.pk}"' in text(client.get("/billing/licenses/"))
    assert f'id="card-{world.spare.pk}"' in text(client.get("/billing/payment/"))
    assert world.invoice.number in text(client.get("/billing/invoices/"))


@pytest.mark.parametrize("who", ["alice", "bob"])
@pytest.mark.parametrize("name", POST_NAMES)
def test_the_owner_and_a_teammate_can_use_every_billing_action(world, request, who, name):
    client = logged_in(request.getfixturevalue(who))
    before = books()
    response = post(client, post_urls(world)[name], valid_data(name, world, client))
    assert response.status_code == 302, text(response)[:1000]
    after = books()
    if name == "cancel":
        world.renewing.refresh_from_db()
        assert world.renewing.cancel_at_period_end
    elif name == "undo cancel":
        world.cancelling.refresh_from_db()
        assert not world.cancelling.cancel_at_period_end
    elif name == "make card default":
        world.spare.refresh_from_db()
        assert world.spare.is_default
    elif name == "remove card":
        assert (world.spare.pk, False) not in after["cards"]
    elif name == "billing details":
        assert account_state(world.default.account)[0] == "Renamed Ltd"
    elif name == "complete purchase":
        assert after["purchases"] == before["purchases"] + 1
    elif name == "add card":
        assert len(after["cards"]) == len(before["cards"]) + 1
    elif name == "top up":
        assert after["top-ups"] == before["top-ups"] + 1
    elif name == "undo change":
        world.downgrading.refresh_from_db()
        assert not world.downgrading.change_scheduled


# Another account ------------------------------------------------------------------------------------


def foreign_posts(w) -> dict[str, str]:
    return {
        "cancel alice's license": f"/billing/licenses/{w.renewing.pk}/cancel/",
        "undo alice's cancellation": f"/billing/licenses/{w.cancelling.pk}/undo-cancel/",
        "make alice's card default": f"/billing/payment/cards/{w.spare.pk}/default/",
        "remove alice's default card": f"/billing/payment/cards/{w.default.pk}/remove/",
        "remove alice's spare card": f"/billing/payment/cards/{w.spare.pk}/remove/",
        "undo alice's plan change": f"/billing/licenses/{w.downgrading.pk}/undo-change/",
    }


FOREIGN_NAMES = ["cancel alice's license", "undo alice's cancellation", "make alice's card default",
                 "remove alice's default card", "remove alice's spare card", "undo alice's plan change"]


@pytest.mark.parametrize("htmx", [False, True], ids=["plain post", "htmx post"])
@pytest.mark.parametrize("name", FOREIGN_NAMES)
def test_another_account_gets_404_on_alices_licenses_and_cards_and_nothing_changes(world, charlie, name, htmx):
    client = logged_in(charlie)
    before, alice_before = books(), account_state(world.default.account)
    url = foreign_posts(world)[name]
    target = f"license-{world.renewing.pk}" if "license" in name else "cards"
    response = post(client, url, htmx=htmx, target=target)
    assert response.status_code == 404
    assert world.invoice.number not in text(response)
    assert books() == before
    assert account_state(world.default.account) == alice_before


@pytest.mark.parametrize("htmx", [False, True], ids=["plain get", "htmx get"])
def test_another_account_gets_404_on_alices_invoice_pdf(world, charlie, htmx):
    response = logged_in(charlie).get(f"/billing/invoices/{world.invoice.number}.pdf",
                                      headers=HTMX if htmx else {})
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("htmx", [False, True], ids=["full page", "htmx partial"])
def test_another_account_sees_only_its_own_rows_on_every_tab(world, charlie, htmx):
    client = logged_in(charlie)
    headers = HTMX if htmx else {}
    licenses = text(client.get("/billing/licenses/", headers=headers))
    assert f'id="license-{world.charlie_license.pk}"' in licenses
    assert f'id="license-{world.renewing.pk}"' not in licenses
    assert f'id="license-{world.cancelling.pk}"' not in licenses
    cards = text(client.get("/billing/payment/", headers=headers))
    assert f'id="card-{world.charlie_card.pk}"' in cards
    assert f'id="card-{world.default.pk}"' not in cards
    assert f'id="card-{world.spare.pk}"' not in cards
    invoices = text(client.get("/billing/invoices/", headers=headers))
    assert world.charlie_invoice.number in invoices
    assert world.invoice.number not in invoices


def test_htmx_partials_say_they_vary_on_hx_request(world, alice):
    response = logged_in(alice).get("/billing/invoices/", headers=HTMX)
    assert "HX-Request" in response["Vary"]
    assert "<html" not in text(response)


def test_another_accounts_htmx_summary_is_priced_on_its_own_licenses_only(world, alice, charlie):
    # Alice has 2 active licenses; 3 more would reach her 5-license bracket, but never charlie's.
    assert summary_figure(summary(logged_in(alice), period="monthly", tier="pro", quantity=3, coupon=""),
                          "volume_discount") < 0
    charlie_summary = summary(logged_in(charlie), period="monthly", tier="pro", quantity=3, coupon="")
    assert not summary_shows(charlie_summary, "volume_discount")
    assert summary_figure(charlie_summary) == 297


def test_a_form_token_from_another_account_is_refused(world, alice, charlie):
    charlie_token = form_token(logged_in(charlie))
    client = logged_in(alice)
    before = books()
    response = post(client, "/billing/licenses/add/", purchase_data(token=charlie_token))
    assert response.status_code == 400
    assert "This form has expired" in text(response)
    assert books() == before


def test_a_staff_user_without_an_account_gets_404_on_billing_pages(world):
    staff = User.objects.create_user(email="staff@pictor.example", password="x-Secret-12345", is_staff=True)
    client = Client()
    client.force_login(staff)
    for url in get_urls(world).values():
        assert client.get(url).status_code == 404, url
    before = books()
    csrf_token(client)
    for url in post_urls(world).values():
        assert post(client, url, {"name": "Staff Co"}).status_code == 404, url
    assert books() == before


# Finance staff, and who is not -----------------------------------------------------------------------


@pytest.fixture
def finance(world):
    return world.finance_staff


@pytest.mark.parametrize("name", FINANCE_NAMES)
def test_finance_staff_can_open_every_finance_page(world, finance, name):
    response = logged_in(finance).get(finance_urls(world)[name], follow=name == "finance home")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    if name == "finance invoice pdf":
        assert response["Content-Type"] == "application/pdf"
    if name in {"finance zip", "finance zip download"}:
        assert response["Content-Type"] == "application/zip"


@pytest.mark.parametrize("name", FINANCE_NAMES)
def test_a_superuser_can_open_every_finance_page(world, name):
    root = User.objects.create_superuser(email="root@pictor.example", password="x-Secret-12345")
    client = Client()
    client.force_login(root)
    assert client.get(finance_urls(world)[name], follow=name == "finance home").status_code == 200


def test_finance_staff_see_every_accounts_invoices(world, finance):
    body = text(logged_in(finance).get("/finance/invoices/"))
    assert world.invoice.number in body and world.charlie_invoice.number in body


@pytest.mark.parametrize("who", ["alice", "bob", "charlie"])
@pytest.mark.parametrize("htmx", [False, True], ids=["plain get", "htmx get"])
@pytest.mark.parametrize("name", FINANCE_NAMES)
def test_account_owners_get_404_on_every_finance_page(world, request, who, name, htmx):
    response = logged_in(request.getfixturevalue(who)).get(finance_urls(world)[name], headers=HTMX if htmx else {})
    assert response.status_code == 404
    assert world.charlie_invoice.number not in text(response)


@pytest.mark.parametrize("kind", ["staff outside the group", "finance group member with an account",
                                  "inactive finance staff"])
def test_nobody_else_opens_the_finance_area(world, alice, kind):
    if kind == "staff outside the group":
        user = User.objects.create_user(email="staff@pictor.example", password="x-Secret-12345", is_staff=True)
    elif kind == "finance group member with an account":
        user = alice
        user.is_staff = True
        user.save()
        user.groups.add(Group.objects.get(name="Finance"))
    else:
        user = finance_user_make(email="gone@pictor.example", is_active=False)
    client = Client()
    client.force_login(user)
    for url in finance_urls(world).values():
        response = client.get(url)
        assert response.status_code in (404, 302), url
        if response.status_code == 302:  # an inactive user is no longer logged in
            assert response["Location"].startswith("/login/"), url


def test_leaving_the_finance_group_closes_the_area_on_the_very_next_request(world, finance):
    client = logged_in(finance)
    assert client.get("/finance/invoices/").status_code == 200
    finance.groups.remove(Group.objects.get(name="Finance"))
    finance.groups.add(Group.objects.create(name="Finance auditors"))  # another group, however named
    assert client.get("/finance/invoices/").status_code == 404


def test_finance_staff_get_404_on_the_owners_billing_pages_and_change_nothing(world, finance):
    """Finance staff have no account: the Billing area is not theirs, and nothing there moves money for them."""
    client = logged_in(finance)
    for url in get_urls(world).values():
        assert client.get(url).status_code == 404, url
    before = books()
    for url in post_urls(world).values():
        assert post(client, url, {"name": "Finance Co", "package": world.package.pk}).status_code == 404, url
    assert books() == before


def test_the_finance_area_changes_nothing_and_takes_no_posts(world, finance):
    client = logged_in(finance)
    before = books()
    for url in finance_urls(world).values():
        assert post(client, url.split("?")[0], {"status": "void"}).status_code == 405, url
        client.get(url)
    assert books() == before


def test_a_huge_id_is_simply_not_found(world, alice):
    client = logged_in(alice)
    assert post(client, f"/billing/licenses/{'9' * 30}/cancel/").status_code == 404
    assert post(client, f"/billing/payment/cards/{'9' * 30}/remove/").status_code == 404


# CSRF -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", POST_NAMES)
def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(world, alice, name):
    client = logged_in(alice)
    data = valid_data(name, world, client)
    before, alice_before = books(), account_state(alice.account)
    response = client.post(post_urls(world)[name], data)
    assert response.status_code == 403
    assert "This form has expired" in text(response)
    assert books() == before
    assert account_state(alice.account) == alice_before


@pytest.mark.parametrize("name", POST_NAMES)
def test_an_htmx_post_with_a_wrong_csrf_token_is_refused_and_changes_nothing(world, alice, name):
    client = logged_in(alice)
    data = valid_data(name, world, client)
    csrf_token(client)
    before = books()
    response = client.post(post_urls(world)[name], data, headers={**HTMX, "X-CSRFToken": "x" * 32})
    assert response.status_code == 403
    assert books() == before


@pytest.mark.parametrize("url", ["/signup/", "/login/", "/logout/"])
def test_account_forms_also_need_the_csrf_token(world, alice, url):
    client = Client(enforce_csrf_checks=True)
    if url == "/logout/":
        client.force_login(alice)
    users = User.objects.count()
    response = client.post(url, {"company_name": "X", "email": "x@example.com", "username": "alice@example.com",
                                 "password": "correct horse battery staple"})
    assert response.status_code == 403
    assert User.objects.count() == users


def test_an_htmx_request_from_an_expired_session_sends_the_whole_page_to_log_in(db):
    response = Client().get("/billing/licenses/summary/?period=monthly&tier=pro&quantity=1",
                            headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/billing/licenses/add/"})
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/login/?next=%2Fbilling%2Flicenses%2Fadd%2F"
