"""Usage debit plans that stay right however small the tables were when they were made.

PostgreSQL keeps `tokens_usage_debit`'s plans for the connection's life. Planned while the ledger
looked tiny (a new deployment, or statistics from a freshly seeded database), it kept sequential
scans of the ledger and the remembered requests, whose cost then grew with every debit: 0.8 ms a
debit at 2,000 rows, 2.9 ms at 12,000, until autovacuum's next ANALYZE. Every lookup of the debit has
an index made for it, so the function plans with sequential scans off; and the plain account
indexes go (the composite indexes lead with the account), so the index it takes is the one made for
the lookup: the key's unique index, the ledger's (account, -id). Measured: flat at 0.5-0.6 ms a debit
from the first row to 12,000. A later CREATE OR REPLACE of the function must say SET enable_seqscan = off
again (it replaces the settings too).
"""

import django.db.models.deletion
from django.db import migrations, models

SIGNATURE = "tokens_usage_debit(bigint, text, text, text, integer, text, integer, text, timestamptz, boolean)"


def plans_pin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER FUNCTION {SIGNATURE} SET enable_seqscan = off")


def plans_unpin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER FUNCTION {SIGNATURE} RESET enable_seqscan")


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0006_user_email_verified_at"),
        ("tokens", "0006_usage_debit_function"),
    ]

    operations = [
        migrations.AlterField(
            model_name="tokenentry",
            name="account",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="token_entries", to="accounts.account"),
        ),
        migrations.AlterField(
            model_name="usagerequest",
            name="account",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                    to="accounts.account"),
        ),
        migrations.RunPython(plans_pin, plans_unpin),
    ]
