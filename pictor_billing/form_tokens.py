"""Guards of the forms that move money: one-time tokens, signed quote digests, and refusing fields we
never read.

One-time form tokens: a signed, account-bound nonce placed in a purchase form. Signing (Django's
salted HMAC) stops a client inventing or borrowing a token; the unique `token` column on the
purchase it creates makes it one-time, so a double click, a second tab or a browser retry
completes the purchase once.

Quote digests: the order on screen, signed for this account (`pricing.quote_fingerprint` under
Django's salted HMAC, as `contrib/auth/tokens.py` does it). The form posts it back; the server
charges only when its own quote has the same digest, so nobody is charged a total never shown.
"""

import secrets

from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac

from pictor_billing import pricing

MAX_AGE_SECONDS = 24 * 60 * 60


def form_token_new(*, account_id: int, salt: str) -> str:
    """A fresh token for one form of this account."""
    return signing.dumps([account_id, secrets.token_hex(16)], salt=salt, compress=False)


def form_token_nonce(value: str, *, account_id: int, salt: str) -> str | None:
    """The token's nonce if it is genuine, recent and this account's; None otherwise."""
    if not value or len(value) > 200:
        return None
    try:
        owner, nonce = signing.loads(value, salt=salt, max_age=MAX_AGE_SECONDS)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if owner != account_id or not isinstance(nonce, str):
        return None
    return nonce


def form_with_fresh_token(form, *, account_id: int, salt: str):
    """The same bound form with a new token: after a refused token, the retry must be able to succeed."""
    data = form.data.copy()
    data["token"] = form_token_new(account_id=account_id, salt=salt)
    return type(form)(data)


def unexpected_fields_error(data, allowed: set[str]) -> str:
    """The refusal for posted fields the form never reads (a price, a total…); '' when there are none."""
    extra = sorted(set(data) - allowed)
    if not extra:
        return ""
    return f"Unexpected field(s): {', '.join(extra)[:100]}. Prices and totals are always computed by Pictor."


def quote_digest(quote, *, account_id: int, salt: str) -> str:
    """The signed digest of the order this quote shows, for this account's form."""
    return salted_hmac(salt, f"{account_id}:{pricing.quote_fingerprint(quote)}", algorithm="sha256").hexdigest()


def quote_digest_matches(posted: str, quote, *, account_id: int, salt: str) -> bool:
    """Whether the posted digest is that of this quote (constant time)."""
    return bool(posted) and constant_time_compare(posted, quote_digest(quote, account_id=account_id, salt=salt))
