"""POST /api/v1/usage: debits rate × quantity tokens, once per idempotency key, never below zero."""

import datetime

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from accounts.api_keys import api_key_create
from tests.api.conftest import DeviceClient, grant, ledger
from tests.factories import AccountFactory
from tokens.models import OutputRate, TokenEntry, TokenSettings
from tokens.services import token_balance


@pytest.mark.parametrize(("output_type", "quantity", "debited"), [
    ("ai_image", 3, 3),        # 1 token each
    ("ai_video", 2, 20),       # 10 tokens each
    ("photo", 5, 0),           # free
    ("gif", 4, 0),             # free
    ("video_capture", 1, 0),   # free
])
def test_usage_debits_the_rate_times_the_quantity(alice, alice_device, output_type, quantity, debited):
    grant(alice.account, 100)

    response = alice_device.usage(output_type, quantity, event_id="wedding")

    assert response.status_code == 201
    body = response.json()
    assert body["debited"] == debited
    assert body["balance"] == 100 - debited == token_balance(alice.account)
    assert (body["output_type"], body["quantity"], body["event_id"]) == (output_type, quantity, "wedding")
    entry = TokenEntry.objects.get(pk=body["entry_id"])
    assert (entry.kind, entry.amount, entry.output_type, entry.quantity, entry.event_id) == (
        TokenEntry.USAGE, -debited, output_type, quantity, "wedding")


def test_a_rate_change_applies_to_later_usage_only(alice, alice_device):
    grant(alice.account, 100)
    first = alice_device.usage("ai_image", 2).json()
    assert first["debited"] == 2
    OutputRate.objects.create(output_type="ai_image", tokens=3, effective_from=timezone.now())
    OutputRate.objects.create(output_type="ai_video", tokens=1,  # announced for tomorrow: not yet
                              effective_from=timezone.now() + datetime.timedelta(days=1))

    assert alice_device.usage("ai_image", 2).json()["debited"] == 6
    assert alice_device.usage("ai_video", 1).json()["debited"] == 10
    # The first debit keeps the rate it was made at.
    assert TokenEntry.objects.get(pk=first["entry_id"]).amount == -2
    assert token_balance(alice.account) == 100 - 2 - 6 - 10


def test_not_enough_tokens_is_402_and_nothing_is_debited(alice, alice_device):
    grant(alice.account, 15)
    before = ledger(alice.account)

    response = alice_device.usage("ai_video", 2)

    assert response.status_code == 402
    assert response.json() == {"error": "insufficient_tokens", "balance": 15, "needed": 20,
                               "detail": "This needs 20 tokens and the balance is 15."}
    assert ledger(alice.account) == before


def test_the_balance_can_be_spent_down_to_exactly_zero(alice, alice_device):
    grant(alice.account, 10)
    assert alice_device.usage("ai_video", 1).json()["balance"] == 0
    assert alice_device.usage("ai_image", 1).status_code == 402
    assert alice_device.usage("photo", 3).status_code == 201  # free outputs still work at zero


def test_the_same_idempotency_key_returns_the_first_answer_and_debits_once(alice, alice_device):
    grant(alice.account, 100)
    first = alice_device.usage("ai_video", 1, key="booth-1-output-42")
    again = alice_device.usage("ai_video", 1, key="booth-1-output-42")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert token_balance(alice.account) == 90
    assert TokenEntry.objects.filter(account=alice.account, kind=TokenEntry.USAGE).count() == 1


def test_a_replay_answers_as_first_even_after_the_rate_changed(alice, alice_device):
    grant(alice.account, 100)
    first = alice_device.usage("ai_image", 1, key="k1").json()
    OutputRate.objects.create(output_type="ai_image", tokens=5, effective_from=timezone.now())
    assert alice_device.usage("ai_image", 1, key="k1").json() == first
    assert token_balance(alice.account) == 99


@pytest.mark.parametrize("change", [{"quantity": 2}, {"output_type": "ai_video"}, {"event_id": "another"}])
def test_the_same_idempotency_key_with_a_different_body_is_409_and_debits_nothing(alice, alice_device, change):
    grant(alice.account, 100)
    alice_device.usage(**{"output_type": "ai_image", "quantity": 1, "event_id": "wedding", "key": "k1"})
    before = ledger(alice.account)

    response = alice_device.usage(**{"output_type": "ai_image", "quantity": 1, "event_id": "wedding", "key": "k1",
                                     **change})

    assert response.status_code == 409
    assert response.json()["error"] == "idempotency_key_reused"
    assert ledger(alice.account) == before


def test_a_refused_debit_can_be_retried_with_the_same_key_after_a_top_up(alice, alice_device):
    grant(alice.account, 5)
    assert alice_device.usage("ai_video", 1, key="k1").status_code == 402
    grant(alice.account, 10)
    retry = alice_device.usage("ai_video", 1, key="k1")
    assert retry.status_code == 201
    assert retry.json()["balance"] == 5


def test_idempotency_keys_belong_to_one_account(alice, charlie, alice_device, charlie_device):
    grant(alice.account, 10)
    grant(charlie.account, 10)
    assert alice_device.usage("ai_image", 1, key="shared").json()["balance"] == 9
    assert charlie_device.usage("ai_image", 2, key="shared").json()["balance"] == 8


def test_the_balance_always_equals_the_ledgers_sum(alice, alice_device):
    grant(alice.account, 50)
    for output_type, quantity in [("ai_image", 7), ("photo", 3), ("ai_video", 3), ("ai_video", 2)]:
        alice_device.usage(output_type, quantity)  # the last one is refused: 13 left, 20 needed
    entries = TokenEntry.objects.filter(account=alice.account)
    assert entries.balance() == token_balance(alice.account) == 50 - 7 - 30 == 13
    assert entries.order_by("-id").first().balance_after == 13


def test_a_whole_quantity_written_as_a_float_is_debited_as_that_number(alice, alice_device):
    """JSON Schema's `integer` (the OpenAPI document's type) admits 326.0; the API takes it as 326."""
    grant(alice.account, 1000)

    response = alice_device.usage("ai_image", 326.0)

    assert response.status_code == 201
    assert (response.json()["debited"], response.json()["quantity"]) == (326, 326)
    assert token_balance(alice.account) == 1000 - 326


def test_a_retry_writing_the_quantity_as_a_float_is_the_same_request(alice, alice_device):
    grant(alice.account, 100)
    first = alice_device.usage("ai_image", 2, key="booth-1-output-7")
    again = alice_device.usage("ai_image", 2.0, key="booth-1-output-7")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert token_balance(alice.account) == 98


def test_an_accounts_first_debit_below_the_alert_flags_the_dip(alice, alice_device):
    account = AccountFactory(name="Never Adjusted")  # no token settings row yet: the debit makes it
    TokenEntry.objects.create(account=account, kind=TokenEntry.ADMIN_ADJUSTMENT, amount=25, balance_after=25)
    device = DeviceClient(api_key_create(account=account, name="Booth", created_by=None)[1])

    assert device.usage("ai_image", 10).json()["balance"] == 15  # the default alert is at 20

    assert TokenSettings.objects.get(account=account).low_balance_alerted


class TestStatementsPerDebit:
    """A debit costs at most 3 SQL statements beyond the authenticated API call's two (the key, one SELECT).

    Here the debit runs inside the test's own transaction (SQLite's then also sends a SAVEPOINT and its
    RELEASE, which production, where it is the outermost transaction, does not).
    """

    def debit_statements(self, alice, alice_device, django_assert_max_num_queries, **usage):
        grant(alice.account, 100)
        alice_device.usage("ai_image", 1)  # the first debit makes the settings row; the key's last use is noted
        with django_assert_max_num_queries(2 + 3 + 2) as captured:
            assert alice_device.usage(**usage).status_code == 201
        statements = [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]
        assert len(statements) <= 2 + 3, statements
        return statements

    def test_a_debit_is_the_key_and_one_statement_on_postgresql(self, alice, alice_device,
                                                                 django_assert_max_num_queries):
        statements = self.debit_statements(alice, alice_device, django_assert_max_num_queries,
                                           output_type="ai_video", quantity=2)
        if connection.vendor == "postgresql":  # the key, then the lock and the debit in one function call
            assert [sql.split()[0] for sql in statements] == ["SELECT", "SELECT"]
            assert "tokens_usage_debit(" in statements[1]
        else:  # SQLite: the key, the lock, one read, the ledger entry, the remembered answer
            assert [sql.split()[0] for sql in statements] == ["SELECT", "SELECT", "SELECT", "INSERT", "INSERT"]

    def test_a_replay_costs_no_more_than_a_debit(self, alice, alice_device, django_assert_max_num_queries):
        alice_device.usage("ai_image", 1, key="k-1")
        self.debit_statements(alice, alice_device, django_assert_max_num_queries, output_type="ai_image",
                              quantity=1, key="k-1")


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement debit is PostgreSQL's")
def test_outside_a_transaction_the_debit_is_one_round_trip_and_commits(django_assert_max_num_queries):
    """As in production (no test transaction around it): no BEGIN and no COMMIT of its own, and yet
    the debit and its remembered answer are committed: another connection sees them."""
    account = AccountFactory()
    grant(account, 100)
    device = DeviceClient(api_key_create(account=account, name="Booth", created_by=None)[1])
    device.usage("ai_image", 1)  # the first debit makes the settings row; the key's last use is noted

    with django_assert_max_num_queries(2) as captured:
        body = device.usage("ai_image", 3, key="committed-1").json()

    assert [q["sql"].split()[0] for q in captured.captured_queries] == ["SELECT", "SELECT"]
    assert body["balance"] == 96
    params = {name: value for name, value in connection.get_connection_params().items()
              if name in ("dbname", "user", "password", "host", "port")}
    with psycopg.connect(**params) as other:  # its own connection: it sees only what is committed
        assert other.execute("SELECT balance_after FROM tokens_tokenentry WHERE id = %s",
                             [body["entry_id"]]).fetchone() == (96,)
        assert other.execute("SELECT response->>'balance' FROM tokens_usagerequest WHERE idempotency_key = %s",
                             ["committed-1"]).fetchone() == ("96",)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the debit function is PostgreSQL's")
def test_the_debit_reads_through_its_own_indexes_even_while_the_tables_look_empty(alice, alice_device):
    """The function's plans are kept for the connection's life: made while the ledger looked empty (a
    new deployment, fresh statistics), sequential scans would stay and cost more with every debit. Its
    lookups take indexes (tokens/migrations/0007), as auto_explain shows them: the key's unique one, and
    for the newest ledger entry an index scan that stops at its first row (the ledger's (account, -id),
    or the primary key backwards when the statistics know of one account only)."""
    grant(alice.account, 100)
    plans = []
    connection.ensure_connection()

    def handler(notice):
        plans.append(notice.message_primary)

    connection.connection.add_notice_handler(handler)
    try:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE tokens_tokenentry, tokens_usagerequest")  # statistics of a one-entry ledger
            for setting in ("LOAD 'auto_explain'", "SET LOCAL auto_explain.log_min_duration = 0",
                            "SET LOCAL auto_explain.log_nested_statements = on",
                            "SET LOCAL auto_explain.log_level = notice"):
                cursor.execute(setting)
        assert alice_device.usage("ai_image", 1, key="planned-1").status_code == 201
    finally:
        connection.connection.remove_notice_handler(handler)
    debit = next(plan for plan in plans if "WITH earlier AS" in plan)
    assert "Seq Scan on tokens_" not in debit
    assert "using one_usage_per_key on tokens_usagerequest" in debit
    ledger_index = next(index.name for index in TokenEntry._meta.indexes if index.fields == ["account", "-id"])
    newest = next(line for line in debit.splitlines() if "on tokens_tokenentry entry" in line)
    assert any(f"{scan} " in newest for scan in (f"Index Scan using {ledger_index}",
                                                 "Index Scan Backward using tokens_tokenentry_pkey"))
