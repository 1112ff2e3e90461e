"""Account writes: the account lock every money path takes first, and the billing details."""

from django.db import transaction

from accounts.models import Account

BILLING_DETAIL_FIELDS = ("name", "address_line1", "address_line2", "city", "postal_code", "country", "vat_id")


def account_lock(account: Account) -> Account:
    """Lock the account row for the rest of the transaction and return it fresh.

    Every read-then-write on an account's counts and balances (licenses,
    credit, tokens, cards) takes this lock first, so they serialize per account.
    """
    return Account.objects.select_for_update().get(pk=account.pk)


def account_lock_by_id(account_id: int) -> Account:
    """`account_lock` for an account known by its id (a payment attempt's), without reading it first."""
    return Account.objects.select_for_update().get(pk=account_id)


@transaction.atomic
def billing_details_update(*, account: Account, **details: str) -> Account:
    """Save the billing name and address printed on invoices issued from now on.

    Under the account lock, and only these fields: a form built from a copy of the account
    read earlier must never write back the rest of the row (the monthly anchor a purchase has
    just set, say).
    """
    unknown = set(details) - set(BILLING_DETAIL_FIELDS)
    if unknown:
        raise ValueError(f"not billing details: {sorted(unknown)}")
    locked = account_lock(account)
    for name, value in details.items():
        setattr(locked, name, value)
    locked.save(update_fields=list(details))
    return locked
