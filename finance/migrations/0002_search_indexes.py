"""Indexes for the finance area's invoice search, on PostgreSQL (SQLite searches without them).

- Trigram indexes (pg_trgm) on what the text filter matches anywhere inside (icontains, which Django
  writes as UPPER(column::text) LIKE UPPER('%…%')): invoice numbers and buyer names, account names
  and billing emails, users' emails. Without them every search reads every invoice.
- The real series' invoices by issue date, in the search's default order (newest first), carrying
  their totals: a date range's invoices and their totals are read from the index alone, and an
  unfiltered search's first pages straight off it.

pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it. Where the
extension cannot be created the trigram indexes are left out (a warning says so); the search still
works, it only reads more.
"""

import logging

from django.db import migrations, transaction

logger = logging.getLogger(__name__)

TRIGRAM_INDEXES = [
    ("finance_invoice_number_trgm", "invoices_invoice", "number"),
    ("finance_invoice_buyer_trgm", "invoices_invoice", "buyer_name"),
    ("finance_account_name_trgm", "accounts_account", "name"),
    ("finance_account_email_trgm", "accounts_account", "billing_email"),
    ("finance_user_email_trgm", "accounts_user", "email"),
]
ISSUED_INDEX = ("CREATE INDEX IF NOT EXISTS finance_invoice_issued ON invoices_invoice "
                "(issued_on, year, sequence, id) INCLUDE (total) WHERE series = '' AND number IS NOT NULL")


def indexes_create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(ISSUED_INDEX)
    try:
        with transaction.atomic(using=schema_editor.connection.alias):  # a savepoint: a refusal leaves the rest
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except Exception as error:  # noqa: BLE001 - any refusal: the search works without these indexes
        logger.warning("pg_trgm could not be created (%s): the finance search runs without trigram indexes", error)
        return
    for name, table, column in TRIGRAM_INDEXES:
        schema_editor.execute(f'CREATE INDEX IF NOT EXISTS {name} ON {table} '
                              f'USING gin ((UPPER("{column}"::text)) gin_trgm_ops)')


def indexes_drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in ["finance_invoice_issued", *(name for name, _, _ in TRIGRAM_INDEXES)]:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):

    dependencies = [
        ("finance", "0001_initial"),
        ("invoices", "0007_plan_changes"),
        ("accounts", "0006_user_email_verified_at"),
    ]

    operations = [migrations.RunPython(indexes_create, indexes_drop)]
