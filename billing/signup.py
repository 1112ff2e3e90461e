"""Signing up: a new company account, its first user and the welcome tokens, together."""

from django.db import transaction

from accounts.models import Account, User
from tokens.services import tokens_grant_signup


@transaction.atomic
def account_signup(*, company_name: str, email: str, password: str) -> User:
    """Create the account, its owner and the one-time 50-token signup grant."""
    account = Account.objects.create(name=company_name)
    user = User.objects.create_user(email=email, password=password, account=account)
    tokens_grant_signup(account=account)
    return user
