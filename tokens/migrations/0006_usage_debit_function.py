"""The usage debit as one PostgreSQL function, `tokens_usage_debit` (SQLite debits without it).

What the device API's POST /api/v1/usage runs for each debit (tokens.services.tokens_spend), in one
statement: take the account's row lock, then, in a statement of its own (a volatile function's every
statement sees the data as it stands when that statement begins, so it reads the balance the debit
ahead of it left), read the key's earlier request, the newest running balance, the rate in force and
the settings, and only when the key is new and the balance covers the cost write the ledger entry and
the remembered answer (the body the API returns). It answers one row: what the key found, the balance
and cost, the entry written, and whether the new balance crosses a settings threshold (the caller then
checks them under the lock); no row when there is no such account.

Its plans are kept by the server for the session, where the same SQL sent as text was parsed and
planned anew on every request. Called outside a transaction it is its own: lock, debit, commit, in
one round trip. Changing it means a new migration with CREATE OR REPLACE FUNCTION.
"""

from django.db import migrations

USAGE_DEBIT_FUNCTION = """
CREATE OR REPLACE FUNCTION tokens_usage_debit(
    p_account bigint, p_key text, p_hash text, p_output_type text, p_quantity integer, p_event_id text,
    p_default_rate integer, p_kind text, p_now timestamptz, p_may_queue_top_up boolean)
RETURNS TABLE (earlier_hash varchar, earlier_response jsonb, balance integer, cost integer, entry_id bigint,
               balance_after integer, thresholds_crossed boolean)
LANGUAGE plpgsql VOLATILE AS $function$
BEGIN
    PERFORM 1 FROM accounts_account WHERE id = p_account FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH earlier AS (SELECT request.body_hash, request.response FROM tokens_usagerequest request
                     WHERE request.account_id = p_account AND request.idempotency_key = p_key),
    state AS (SELECT COALESCE((SELECT entry.balance_after FROM tokens_tokenentry entry
                               WHERE entry.account_id = p_account ORDER BY entry.id DESC LIMIT 1), 0) AS balance,
                     COALESCE((SELECT rate.tokens FROM tokens_outputrate rate
                               WHERE rate.output_type = p_output_type AND rate.effective_from <= p_now
                               ORDER BY rate.effective_from DESC LIMIT 1), p_default_rate) * p_quantity AS cost),
    written AS (INSERT INTO tokens_tokenentry (account_id, kind, amount, balance_after, output_type, quantity,
                                               event_id, note, created_at)
                SELECT p_account, p_kind, -state.cost, state.balance - state.cost, p_output_type, p_quantity,
                       p_event_id, '', p_now
                FROM state WHERE state.balance >= state.cost AND NOT EXISTS (SELECT 1 FROM earlier)
                RETURNING tokens_tokenentry.id, tokens_tokenentry.balance_after),
    remembered AS (INSERT INTO tokens_usagerequest (account_id, idempotency_key, body_hash, response, created_at)
                   SELECT p_account, p_key, p_hash,
                          jsonb_build_object('debited', state.cost, 'balance', written.balance_after,
                                             'output_type', p_output_type, 'quantity', p_quantity,
                                             'event_id', p_event_id, 'entry_id', written.id),
                          p_now
                   FROM written, state)
    SELECT earlier.body_hash, earlier.response, state.balance, state.cost, written.id, written.balance_after,
           -- What tokens.services._thresholds_check could change at the new balance: a first debit makes
           -- the settings row; the low-balance alert flips; an auto top-up is due and none is pending.
           prefs.id IS NULL
           OR (written.balance_after < prefs.low_balance_threshold) <> prefs.low_balance_alerted
           OR (p_may_queue_top_up AND written.balance_after < prefs.auto_top_up_threshold
               AND prefs.auto_top_up_pending_since IS NULL AND prefs.auto_top_up
               AND prefs.auto_top_up_package_id IS NOT NULL)
    FROM state LEFT JOIN earlier ON true LEFT JOIN written ON true
    LEFT JOIN tokens_tokensettings prefs ON prefs.account_id = p_account;
END
$function$
"""


def function_create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(USAGE_DEBIT_FUNCTION)


def function_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS tokens_usage_debit(bigint, text, text, text, integer, text, "
                              "integer, text, timestamptz, boolean)")


class Migration(migrations.Migration):

    dependencies = [
        ("tokens", "0005_auto_top_up_pending"),
        ("accounts", "0006_user_email_verified_at"),
    ]

    operations = [migrations.RunPython(function_create, function_drop)]
