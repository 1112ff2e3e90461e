"""Django admin: staff can open every billing changelist; invoices are read-only there, with their PDF."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from invoices.models import Invoice
from licenses.models import Coupon
from tests.conftest import add_card
from tests.factories import CouponFactory
from tests.helpers import buy_directly, text
from tokens.services import tokens_grant_signup


@pytest.fixture
def admin_client(db):
    superuser = User.objects.create_superuser(email="root@pictor.example", password="x-Admin-secret-1")
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def books_with_rows(prices, packages, alice, charlie):
    card = add_card(alice.account)
    CouponFactory(code="WELCOME10")
    purchase = buy_directly(alice.account, alice, coupon_code="WELCOME10", quantity=2)
    tokens_grant_signup(account=alice.account)
    return {"invoice": purchase.invoice, "card": card, "license": purchase.licenses.first()}


CHANGELISTS = [
    ("accounts", "account", "Alice Events"),
    ("accounts", "user", "alice@example.com"),
    ("licenses", "license", "Alice Events"),
    ("licenses", "pricelistentry", "99.00"),
    ("licenses", "coupon", "WELCOME10"),
    ("tokens", "tokenpackage", "Event Pro"),
    ("invoices", "invoice", "PB-"),
    ("tokens", "tokenentry", "Signup grant"),
    ("payments", "card", "4242"),
    ("payments", "paymentattempt", "Alice Events"),
    ("payments", "creditentry", ""),
    ("licenses", "purchase", "Alice Events"),
    ("tokens", "topup", ""),
    ("licenses", "feature", "Video capture"),
]


@pytest.mark.parametrize(("app", "model", "shows"), CHANGELISTS, ids=[f"{a}.{m}" for a, m, _ in CHANGELISTS])
def test_a_superuser_can_open_every_changelist(admin_client, books_with_rows, app, model, shows):
    response = admin_client.get(reverse(f"admin:{app}_{model}_changelist"))
    assert response.status_code == 200
    assert shows in text(response)


@pytest.mark.parametrize(("app", "model"), [("accounts", "account"), ("accounts", "user"), ("licenses", "license"),
                                            ("payments", "card")])
def test_a_superuser_can_open_a_change_page(admin_client, books_with_rows, alice, app, model):
    pk = {"account": alice.account.pk, "user": alice.pk, "license": books_with_rows["license"].pk,
          "card": books_with_rows["card"].pk}[model]
    assert admin_client.get(reverse(f"admin:{app}_{model}_change", args=[pk])).status_code == 200


def test_a_superuser_can_open_the_add_pages_of_editable_data(admin_client, books_with_rows):
    for name in ("licenses_coupon", "licenses_pricelistentry", "tokens_tokenpackage", "accounts_account"):
        assert admin_client.get(reverse(f"admin:{name}_add")).status_code == 200, name


def test_an_invoice_change_page_is_read_only(admin_client, books_with_rows):
    invoice = books_with_rows["invoice"]
    response = admin_client.get(reverse("admin:invoices_invoice_change", args=[invoice.pk]))
    assert response.status_code == 200
    body = text(response)
    assert invoice.number in body
    assert 'name="_save"' not in body
    assert 'name="_continue"' not in body
    assert reverse("admin:invoices_invoice_delete", args=[invoice.pk]) not in body
    for field in ("number", "buyer_name", "total", "status", "lines-0-amount"):
        assert f'name="{field}"' not in body
    assert "Alice Events" in body  # shown as text, not as a field


def test_an_invoice_change_page_links_to_its_pdf(admin_client, books_with_rows):
    invoice = books_with_rows["invoice"]
    body = text(admin_client.get(reverse("admin:invoices_invoice_change", args=[invoice.pk])))
    assert reverse("admin:invoices_invoice_pdf", args=[invoice.pk]) in body


def test_an_invoice_cannot_be_changed_or_deleted_through_the_admin(admin_client, books_with_rows):
    invoice = books_with_rows["invoice"]
    response = admin_client.post(reverse("admin:invoices_invoice_change", args=[invoice.pk]),
                                 {"buyer_name": "Someone else", "total": "0.01"})
    assert response.status_code == 403
    assert admin_client.post(reverse("admin:invoices_invoice_delete", args=[invoice.pk]),
                             {"post": "yes"}).status_code == 403
    assert admin_client.get(reverse("admin:invoices_invoice_add")).status_code == 403
    stored = Invoice.objects.get(pk=invoice.pk)
    assert (stored.buyer_name, stored.total) == (invoice.buyer_name, invoice.total)


def test_the_invoice_changelist_links_to_each_pdf_and_the_link_downloads_it(admin_client, books_with_rows):
    invoice = books_with_rows["invoice"]
    body = text(admin_client.get(reverse("admin:invoices_invoice_changelist")))
    url = reverse("admin:invoices_invoice_pdf", args=[invoice.pk])
    assert f'<a href="{url}">{invoice.number}.pdf</a>' in body
    response = admin_client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert f'filename="{invoice.number}.pdf"' in response["Content-Disposition"]


def test_the_admin_pdf_link_is_for_staff_only(books_with_rows, alice):
    url = reverse("admin:invoices_invoice_pdf", args=[books_with_rows["invoice"].pk])
    assert Client().get(url).status_code == 302
    client = Client()
    client.force_login(alice)
    response = client.get(url)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_a_staff_user_without_invoice_permission_cannot_download_pdfs(books_with_rows):
    staff = User.objects.create_user(email="helper@pictor.example", password="x-Helper-secret-1", is_staff=True)
    client = Client()
    client.force_login(staff)
    url = reverse("admin:invoices_invoice_pdf", args=[books_with_rows["invoice"].pk])
    assert client.get(url).status_code == 403


def test_a_coupon_added_in_the_admin_is_stored_upper_case(admin_client, db):
    response = admin_client.post(reverse("admin:licenses_coupon_add"), {
        "code": "  summer25 ", "kind": "percent", "value": "25", "combines_with_volume": "on",
        "tiers": ["pro", "premium"], "periods": []})
    assert response.status_code == 302, text(response)[:2000]
    coupon = Coupon.objects.get()
    assert (coupon.code, coupon.tiers, coupon.periods) == ("SUMMER25", ["pro", "premium"], [])


def test_the_admin_refuses_a_second_user_whose_email_differs_only_in_case(admin_client, alice):
    response = admin_client.post(reverse("admin:accounts_user_add"), {
        "email": "ALICE@example.com", "account": alice.account.pk, "password1": "x-Very-long-secret-99",
        "password2": "x-Very-long-secret-99", "usable_password": "true"})
    assert response.status_code == 200
    assert User.objects.filter(email__iexact="alice@example.com").count() == 1
