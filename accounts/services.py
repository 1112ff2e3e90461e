"""Account writes: the account lock every money path takes first, the billing details, billing email."""

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from accounts.models import Account, User

BILLING_DETAIL_FIELDS = ("name", "address_line1", "address_line2", "city", "postal_code", "country", "vat_id",
                         "billing_email")


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


def billing_recipients(account: Account) -> list[str]:
    """Where invoices and billing emails go: the billing email, else every active user of the account."""
    return billing_recipients_of([account])[account.pk]


def billing_recipients_of(accounts: list[Account]) -> dict[int, list[str]]:
    """`billing_recipients` of many accounts (a billing run's batch) in one query at most: {account id: emails}."""
    found: dict[int, list[str]] = {account.pk: [account.billing_email] if account.billing_email else []
                                   for account in accounts}
    without = [account.pk for account in accounts if not account.billing_email]
    if without:
        for account_id, email in (User.objects.filter(account_id__in=without, is_active=True).order_by("pk")
                                  .values_list("account_id", "email")):
            found[account_id].append(email)
    return found


def email_account(account: Account, subject: str, message: str) -> None:
    """A billing email to the account, sent once the caller's transaction commits.

    A rolled-back change never emails anyone; `robust` logs a mail failure instead of raising it
    into a request whose writes are already committed.
    """
    email_accounts([(account, subject, message)])


def email_accounts(emails: list[tuple[Account, str, str]]) -> None:
    """`email_account` for many (account, subject, message), their recipients read in one query; each
    email is sent on its own once the caller's transaction commits, so one failure stops no other."""
    recipients = billing_recipients_of([account for account, _, _ in emails])
    for account, subject, message in emails:
        to = recipients[account.pk]
        if to:
            transaction.on_commit(lambda subject=subject, message=message, to=to: send_mail(
                subject, message, settings.DEFAULT_FROM_EMAIL, to), robust=True)
