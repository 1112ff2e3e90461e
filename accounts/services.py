"""Account writes: the account lock every money path takes first."""

from accounts.models import Account


def account_lock(account: Account) -> Account:
    """Lock the account row for the rest of the transaction and return it fresh.

    Every read-then-write on an account's counts and balances (licenses,
    credit, tokens, cards) takes this lock first, so they serialize per account.
    """
    return Account.objects.select_for_update().get(pk=account.pk)
