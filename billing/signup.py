"""Signing up: a new company account and its first user; the welcome tokens once the email is verified.

The verification link carries a signed, timestamped token (django.core.signing) naming the user and
bound to the email it was sent to: it proves the mailbox was reached.
"""

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction

from accounts.models import Account, User
from accounts.services import account_lock
from pictor_billing import clock
from tokens.services import SIGNUP_GRANT_TOKENS, tokens_grant_signup

VERIFY_SALT = "billing.signup.email_verify"
VERIFY_MAX_AGE = 7 * 24 * 3600  # seconds a verification link works


@transaction.atomic
def account_signup(*, company_name: str, email: str, password: str) -> User:
    """Create the account and its owner; the welcome tokens wait for `email_verify`."""
    account = Account.objects.create(name=company_name)
    return User.objects.create_user(email=email, password=password, account=account)


def _verification_signer(user: User) -> signing.TimestampSigner:
    # The email is in the salt rather than the link: the link shows no address, and a changed email
    # makes it stale.
    return signing.TimestampSigner(salt=f"{VERIFY_SALT}:{user.email}")


def email_verification_token(user: User) -> str:
    return _verification_signer(user).sign(str(user.pk))


def email_verification_user(token: str) -> User | None:
    """The user a verification token was made for; None if it is forged, expired or for another email."""
    user_id = token.partition(":")[0]
    user = User.objects.filter(pk=int(user_id), is_active=True).first() if user_id.isdigit() else None
    if user is None:
        return None
    try:
        _verification_signer(user).unsign(token, max_age=VERIFY_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired included
        return None
    return user


def email_verification_send(*, user: User, link: str) -> None:
    """Email the user their verification link (the view builds it from `email_verification_token`),
    once the caller's transaction commits."""
    message = (f"Welcome to Pictor Billing.\n\nConfirm your email address to get your {SIGNUP_GRANT_TOKENS} free "
               f"tokens:\n\n{link}\n\nThe link works for 7 days. If you did not sign up, ignore this email.\n")
    transaction.on_commit(lambda: send_mail("Confirm your email for Pictor Billing", message,
                                            settings.DEFAULT_FROM_EMAIL, [user.email]), robust=True)


@transaction.atomic
def email_verify(*, user: User) -> bool:
    """Mark the user's email verified and give the account its welcome tokens if it has not had them.

    True the first time; False, and nothing written, for a user already verified (a second click on
    the link, or two at once: the account lock makes the second wait and then see the first).
    """
    account = account_lock(user.account)
    if User.objects.filter(pk=user.pk, email_verified_at__isnull=False).exists():
        return False
    user.email_verified_at = clock.now(account)
    User.objects.filter(pk=user.pk).update(email_verified_at=user.email_verified_at)
    tokens_grant_signup(account=account)
    return True
