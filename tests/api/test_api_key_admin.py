"""Django admin shows API keys read-only, and never their hash."""

import pytest
from django.test import Client

from accounts.models import User
from tests.helpers import text


@pytest.fixture
def admin_client(db):
    superuser = User.objects.create_superuser(email="root@pictor.example", password="x-Admin-secret-1")
    client = Client()
    client.force_login(superuser)
    return client


def test_staff_see_keys_by_name_prefix_and_account_but_never_the_hash(admin_client, alice_key):
    api_key, plain = alice_key
    changelist = text(admin_client.get("/admin/accounts/apikey/"))
    detail = text(admin_client.get(f"/admin/accounts/apikey/{api_key.pk}/change/"))
    for page in (changelist, detail):
        assert api_key.prefix in page
        assert "Alice Events" in page
        assert api_key.key_hash not in page
        assert plain not in page


def test_keys_cannot_be_added_changed_or_deleted_in_the_admin(admin_client, alice_key):
    api_key, _ = alice_key
    assert admin_client.get("/admin/accounts/apikey/add/").status_code == 403
    assert admin_client.post(f"/admin/accounts/apikey/{api_key.pk}/change/", {"name": "x"}).status_code == 403
    assert admin_client.get(f"/admin/accounts/apikey/{api_key.pk}/delete/").status_code == 403
    api_key.refresh_from_db()
    assert api_key.name == "Booth 1"
