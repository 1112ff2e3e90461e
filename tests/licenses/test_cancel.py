"""Cancelling a license never cuts it off: it stays active (and counted) until its billing date; undo is possible."""

import pytest
from django.test import Client

from licenses.models import License
from licenses.services import LicenseActionRefused, license_cancel, license_undo_cancel
from tests.conftest import logged_in
from tests.helpers import buy_directly, post, summary, summary_figure, text


@pytest.fixture
def licenses(prices, alice, alice_card):
    return list(buy_directly(alice.account, alice, tier="pro", period="annual", quantity=4).licenses.order_by("pk"))


@pytest.fixture
def client(alice):
    return logged_in(alice)


def cancel_url(lic):
    return f"/billing/licenses/{lic.pk}/cancel/"


def undo_url(lic):
    return f"/billing/licenses/{lic.pk}/undo-cancel/"


def test_a_cancelled_license_stays_active_until_its_billing_date_and_shows_cancelling(licenses, client):
    lic = licenses[0]
    page = post(client, cancel_url(lic), follow=True)
    assert page.status_code == 200
    lic.refresh_from_db()
    assert (lic.status, lic.cancel_at_period_end) == (License.ACTIVE, True)
    assert lic.cancelled_at is not None
    assert lic.status_label == "Cancelling"
    body = text(page)
    end = lic.period_end
    assert f"License #{lic.pk} is cancelled. It stays active until {end:%b} {end.day}, {end.year}." in body
    row = body[body.index(f'id="license-{lic.pk}"'):]
    row = row[:row.index("</tr>")]
    assert ">Cancelling<" in row
    assert "Ends <time" in row
    assert "Undo cancel" in row
    assert License.objects.active().count() == 4


def test_a_cancelling_license_still_counts_for_the_volume_bracket(licenses, alice, client):
    license_cancel(account=alice.account, license=licenses[0])
    page = summary(client, tier="pro", period="annual", quantity=1, coupon="")
    assert summary_figure(page, "volume_discount") == -99
    assert "with 5 active licenses" in text(page)


def test_undoing_a_cancellation_makes_the_license_renew_as_normal(licenses, alice, client):
    lic = license_cancel(account=alice.account, license=licenses[0])
    page = post(client, undo_url(lic), follow=True)
    lic.refresh_from_db()
    assert (lic.status, lic.cancel_at_period_end, lic.cancelled_at) == (License.ACTIVE, False, None)
    assert f"License #{lic.pk} will renew as normal." in text(page)


def test_cancelling_twice_is_refused_with_409_and_a_message(licenses, alice, client):
    lic = license_cancel(account=alice.account, license=licenses[0])
    cancelled_at = lic.cancelled_at
    response = post(client, cancel_url(lic), htmx=True, target=f"license-{lic.pk}")
    assert response.status_code == 409
    assert "This license is already cancelled." in text(response)
    lic.refresh_from_db()
    assert (lic.cancel_at_period_end, lic.cancelled_at) == (True, cancelled_at)


def test_undoing_a_license_that_is_not_cancelled_is_refused_with_409_and_a_message(licenses, client):
    lic = licenses[0]
    response = post(client, undo_url(lic), htmx=True, target=f"license-{lic.pk}")
    assert response.status_code == 409
    assert "This license is not cancelled." in text(response)
    lic.refresh_from_db()
    assert not lic.cancel_at_period_end


def test_a_refused_plain_form_cancel_shows_the_list_with_the_reason_and_a_409(licenses, alice, client):
    lic = license_cancel(account=alice.account, license=licenses[0])
    response = post(client, cancel_url(lic))
    assert response.status_code == 409
    assert "This license is already cancelled." in text(response)
    assert f'id="license-{lic.pk}"' in text(response)


def test_an_expired_license_can_be_neither_cancelled_nor_undone(licenses, alice, client):
    lic = licenses[0]
    License.objects.filter(pk=lic.pk).update(status=License.EXPIRED)
    response = post(client, cancel_url(lic), htmx=True, target=f"license-{lic.pk}")
    assert response.status_code == 409
    assert "This license has already expired." in text(response)
    with pytest.raises(LicenseActionRefused, match="expired"):
        license_undo_cancel(account=alice.account, license=lic)


def test_an_htmx_cancel_returns_just_the_licenses_row(licenses, client):
    lic = licenses[1]
    response = post(client, cancel_url(lic), htmx=True, target=f"license-{lic.pk}")
    assert response.status_code == 200
    body = text(response)
    assert body.lstrip().startswith(f'<tr id="license-{lic.pk}">')
    assert "<html" not in body
    assert body.count("<tr") == 1
    assert ">Cancelling<" in body
    assert f'hx-post="/billing/licenses/{lic.pk}/undo-cancel/"' in body
    assert "is cancelled. It stays active until" in body  # the flash message, swapped out of band
    assert 'hx-swap-oob="true"' in body


def test_an_htmx_undo_returns_the_row_with_a_cancel_button_again(licenses, alice, client):
    lic = license_cancel(account=alice.account, license=licenses[1])
    response = post(client, undo_url(lic), htmx=True, target=f"license-{lic.pk}")
    assert response.status_code == 200
    body = text(response)
    assert body.lstrip().startswith(f'<tr id="license-{lic.pk}">')
    assert ">Active<" in body
    assert f'hx-get="/billing/licenses/{lic.pk}/cancel/confirm/"' in body  # Cancel again, asking first


def test_cancelling_one_license_leaves_the_others_alone(licenses, client):
    post(client, cancel_url(licenses[2]))
    assert list(License.objects.filter(cancel_at_period_end=True).values_list("pk", flat=True)) == [licenses[2].pk]


def test_a_teammate_can_undo_the_owners_cancellation(licenses, alice, bob):
    lic = license_cancel(account=alice.account, license=licenses[0])
    assert post(logged_in(bob), undo_url(lic)).status_code == 302
    lic.refresh_from_db()
    assert not lic.cancel_at_period_end


def test_a_rows_undo_cancel_button_carries_a_token_the_csrf_check_accepts(licenses, alice):
    # The row is built in Python (licenses.table), with the page's CSRF token: a browser's POST must pass.
    lic = license_cancel(account=alice.account, license=licenses[0])
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    body = text(client.get("/billing/licenses/"))
    row = body[body.index(f'id="license-{lic.pk}"'):]
    form = row[row.index(f'action="{undo_url(lic)}"'):row.index("</form>")]
    token = form.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    assert client.post(undo_url(lic), {"csrfmiddlewaretoken": token}).status_code == 302
    lic.refresh_from_db()
    assert lic.cancel_at_period_end is False
    assert client.post(undo_url(lic), {"csrfmiddlewaretoken": "forged" * 8}).status_code == 403
