"""Device API keys: made, checked and revoked here only.

A key reads `pbk_<prefix>_<secret>`. The prefix is public (the key list shows it, and it
finds the row in one indexed read); the secret is 256 random bits. Only the SHA-256 of the
whole key is stored: a fast hash is enough for a random 256-bit secret (a slow password hash
protects guessable human passwords, which these are not), and it keeps every API request cheap.
"""

import datetime
import hashlib
import hmac
import re
import secrets
from functools import wraps

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from accounts.models import Account, ApiKey, User
from pictor_billing.api import ApiError

KEY_SCHEME = "pbk"
PREFIX_LENGTH = 10  # hex characters: 40 bits, so two keys practically never draw the same one
HEX_PREFIX = re.compile(rf"[0-9a-f]{{{PREFIX_LENGTH}}}")
MAX_KEY_LENGTH = 100  # a real key is 58 characters; anything much longer is not worth hashing
# last_used_at is a hint for the owner ("used 3 minutes ago"), not an audit log: writing it on
# every request would turn each read into a write, so it moves at most once a minute.
LAST_USED_GRANULARITY = datetime.timedelta(minutes=1)
AUTH_CHALLENGE = 'Bearer realm="Pictor device API"'


class ApiKeyPrefixTaken(Exception):
    """A key with this prefix already exists (a create form submitted twice)."""


def key_hash(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def new_prefix() -> str:
    return secrets.token_hex(PREFIX_LENGTH // 2)


def api_key_create(*, account: Account, name: str, created_by: User | None,
                   prefix: str | None = None) -> tuple[ApiKey, str]:
    """A new key for this account: the model (hash only) and the plain key, to show once and never again.

    With `prefix` (from a one-time create form) the same form posted twice makes one key:
    the second time raises ApiKeyPrefixTaken.
    """
    prefix = prefix or new_prefix()
    plain = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    try:
        with transaction.atomic():
            api_key = ApiKey.objects.create(account=account, name=name.strip()[:100], prefix=prefix,
                                            key_hash=key_hash(plain), created_by=created_by)
    except IntegrityError as error:
        raise ApiKeyPrefixTaken(prefix) from error
    return api_key, plain


def api_key_revoke(*, account: Account, api_key: ApiKey, now: datetime.datetime | None = None) -> bool:
    """Revoke the key at once (the next request with it gets 401); False if it was already revoked."""
    revoked = ApiKey.objects.filter(pk=api_key.pk, account=account, revoked_at__isnull=True).update(
        revoked_at=now or timezone.now())
    api_key.refresh_from_db(fields=["revoked_at"])
    return bool(revoked)


def api_key_authenticate(plain: str, *, now: datetime.datetime | None = None) -> ApiKey | None:
    """The live key (with its account) this plain key names; None for anything else.

    One indexed read per request and no cache, so a revoked key is refused from the very next request.
    """
    if not plain or len(plain) > MAX_KEY_LENGTH:
        return None
    scheme, _, rest = plain.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != KEY_SCHEME or not HEX_PREFIX.fullmatch(prefix) or not secret:
        return None
    api_key = ApiKey.objects.select_related("account").filter(prefix=prefix, revoked_at__isnull=True).first()
    # Constant-time, so response times do not tell how much of a guessed key was right.
    if api_key is None or not hmac.compare_digest(api_key.key_hash, key_hash(plain)):
        return None
    now = now or timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_GRANULARITY:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def api_key_required(view):
    """`Authorization: Bearer <key>` with a live key; `request.account` is then the key's account.

    Missing, malformed, unknown and revoked keys all get the same 401: the answer never tells
    which, so it cannot be used to probe for keys.
    """

    @csrf_exempt
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        scheme, _, plain = request.headers.get("Authorization", "").partition(" ")
        api_key = api_key_authenticate(plain.strip()) if scheme.lower() == "bearer" else None
        if api_key is None:
            return ApiError(401, "unauthorized", "Send a live API key as 'Authorization: Bearer <key>'.",
                            headers={"WWW-Authenticate": AUTH_CHALLENGE}).response()
        request.api_key, request.account = api_key, api_key.account
        return view(request, *args, **kwargs)

    return wrapper
