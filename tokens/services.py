"""Tokens: the ledger and its balance, grants and admin adjustments, rates, packages, the owner's
settings, low-balance alerts and the event estimate.

Every write takes the account row lock first (`accounts.services.account_lock`),
so a balance read and the entry written after it cannot interleave with
another request's: usage never takes the balance below zero. Buying tokens
(top-ups, auto top-up) and spending them from the device API are flows of the
`billing` app, built on these pieces.
"""

import contextlib
import datetime
import hashlib
import json
from dataclasses import dataclass

from django.db import connection, transaction

from accounts.models import Account
from accounts.services import account_lock, email_account
from payments.services import NoDefaultCard, credit_balance, default_card
from pictor_billing import clock, pricing
from tokens.models import OUTPUT_TYPES, OutputRate, TokenEntry, TokenPackage, TokenSettings, TopUp, UsageRequest

SIGNUP_GRANT_TOKENS = 50
DEFAULT_RATES = {"photo": 0, "gif": 0, "video_capture": 0, "ai_image": 1, "ai_video": 10}


class InsufficientTokens(Exception):
    """The balance cannot cover a debit; nothing was written."""

    def __init__(self, *, needed: int, balance: int):
        super().__init__(f"needs {needed} tokens, has {balance}")
        self.needed, self.balance = needed, balance


def token_balance(account: Account) -> int:
    """The account's tokens: the running balance of its newest ledger entry (equal to the ledger's sum)."""
    latest = TokenEntry.objects.filter(account=account).order_by("-id").values_list("balance_after", flat=True).first()
    return latest or 0


def ledger_add(*, account: Account, kind: str, amount: int, balance_before: int | None = None,
               **fields) -> TokenEntry:
    """Append one entry; call inside a transaction holding the account lock.

    Raises InsufficientTokens rather than let the balance go below zero (a
    database check constraint refuses it too). The entry is dated by the account's clock.
    `balance_before`: the balance already read under this lock (saves reading it again).
    """
    balance = (token_balance(account) if balance_before is None else balance_before) + amount
    if balance < 0:
        raise InsufficientTokens(needed=-amount, balance=balance - amount)
    fields.setdefault("created_at", clock.now(account))
    return TokenEntry.objects.create(account=account, kind=kind, amount=amount, balance_after=balance, **fields)


def signup_granted(account: Account) -> bool:
    """Whether the account has had its welcome tokens."""
    return TokenEntry.objects.filter(account=account, kind=TokenEntry.SIGNUP_GRANT).exists()


def tokens_grant_signup(*, account: Account) -> TokenEntry | None:
    """The one-time 50-token welcome grant; None if the account already had it (a constraint also
    stops a second one)."""
    with transaction.atomic():
        account_lock(account)
        if signup_granted(account):
            return None
        return ledger_add(account=account, kind=TokenEntry.SIGNUP_GRANT, amount=SIGNUP_GRANT_TOKENS,
                          note="Welcome to Pictor")


@transaction.atomic
def tokens_adjust(*, account: Account, amount: int, reason: str, user) -> TokenEntry:
    """An admin's grant (positive) or deduction (negative), with the reason and who made it."""
    if not amount or not reason.strip():
        raise ValueError("an adjustment needs a non-zero amount and a reason")
    account_lock(account)
    entry = ledger_add(account=account, kind=TokenEntry.ADMIN_ADJUSTMENT, amount=amount, note=reason.strip()[:200],
                       created_by=user)
    # A deduction can start a dip and a grant end one, like usage and top-ups;
    # otherwise the once-per-crossing flag goes stale and a later crossing is silent.
    low_balance_check(account, token_settings(account), entry.balance_after)
    return entry


def package_offer(package: TokenPackage) -> pricing.PackageOffer:
    return pricing.PackageOffer(id=package.pk, name=package.name, tokens=package.tokens, price=package.price)


def packages_on_sale():
    return TokenPackage.objects.filter(is_active=True, price__gt=0, tokens__gt=0)


def top_up_quote(*, account: Account, package: TokenPackage) -> pricing.TopUpQuote:
    """Price a package for this account (its credit balance applies first)."""
    return top_up_mix_quote(account=account, items=[(package, 1)])


def top_up_mix_quote(*, account: Account, items: list[tuple[TokenPackage, int]]) -> pricing.TopUpQuote:
    """Price several packages bought together, for this account."""
    return pricing.quote_top_up_mix(items=[(package_offer(p), count) for p, count in items],
                                    credit_balance=credit_balance(account))


def rates_in_force(now: datetime.datetime) -> dict[str, int]:
    """Tokens per output of each type at this moment (the default rates where no rate is recorded)."""
    rates = dict(DEFAULT_RATES)
    seen = set()
    for output_type, tokens in (OutputRate.objects.filter(effective_from__lte=now)
                                .order_by("-effective_from").values_list("output_type", "tokens")):
        if output_type not in seen:
            seen.add(output_type)
            rates[output_type] = tokens
    return rates


def token_settings(account: Account) -> TokenSettings:
    return TokenSettings.objects.get_or_create(account=account)[0]


class IdempotencyKeyReused(Exception):
    """The idempotency key was used before with a different body; nothing was debited."""


@dataclass(frozen=True)
class UsageRecorded:
    """The answer to a usage debit: the body the API returns, whether it replays the first answer,
    and whether the debit queued an auto top-up (to hand to the task queue once committed)."""

    body: dict
    replayed: bool = False
    top_up_queued: bool = False


def body_fingerprint(body: dict) -> str:
    """A stable hash of a request body, to tell a true retry from a reused key."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class _Debit:
    """What one debit found and did under the account lock (`_debit_postgresql` or `_debit_portable`)."""

    earlier_hash: str | None  # the key's earlier request, if any: then nothing was written
    earlier_response: dict | None
    balance: int  # before the debit
    cost: int
    entry_id: int | None  # None: nothing written (a replay, or not enough tokens)
    balance_after: int | None
    thresholds_crossed: bool  # the new balance may change the settings (`_thresholds_check` to run)
    prefs: TokenSettings | None = None  # the settings as SQLite's debit read them (PostgreSQL's reads its own)


_TABLES = {"entry": TokenEntry._meta.db_table, "request": UsageRequest._meta.db_table,
           "rate": OutputRate._meta.db_table, "prefs": TokenSettings._meta.db_table}

# tokens/migrations/0006_usage_debit_function.py: the account lock, then the debit, in one statement.
USAGE_DEBIT_SQL = ("SELECT * FROM tokens_usage_debit(%(account)s, %(key)s, %(hash)s, %(output_type)s, %(quantity)s, "
                   "%(event_id)s, %(default_rate)s, %(kind)s, %(now)s, %(may_queue_top_up)s)")


def _on_test_clock(account: Account) -> bool:
    """Whether the account's time may be other than real time (so its row must be read under the lock first).

    Only a test account can carry a test clock, and an account becomes one only before it has billed
    anything (billing.clocks): for every other account, the row the API key brought is as good as a
    locked one for telling the time.
    """
    return account.is_test_account or account.clock_frozen_at is not None


def _debit_postgresql(account: Account, *, output_type: str, quantity: int, event_id: str, idempotency_key: str,
                      fingerprint: str, now: datetime.datetime, may_queue_top_up: bool) -> _Debit:
    """The debit as one statement: the function `tokens_usage_debit` takes the account lock, then debits
    in a statement of its own, which reads the balance the debit ahead of it left.

    The server keeps the function's plans, so the debit is not parsed and planned on every request.
    Sent outside a transaction, the statement is its own: lock, debit and commit in one round trip,
    the lock held only for the server's own work and its WAL flush.
    """
    with connection.cursor() as cursor:
        cursor.execute(USAGE_DEBIT_SQL, {
            "account": account.pk, "key": idempotency_key, "hash": fingerprint, "output_type": output_type,
            "quantity": quantity, "event_id": event_id, "default_rate": DEFAULT_RATES[output_type],
            "kind": TokenEntry.USAGE, "now": now, "may_queue_top_up": may_queue_top_up})
        row = cursor.fetchone()
    if row is None:
        raise Account.DoesNotExist(f"no account {account.pk} to debit")  # as account_lock raises
    earlier_hash, earlier_response, balance, cost, entry_id, balance_after, crossed = row
    if isinstance(earlier_response, str):  # Django reads jsonb as text and leaves parsing to the field
        earlier_response = json.loads(earlier_response)
    return _Debit(earlier_hash, earlier_response, balance, cost, entry_id, balance_after, bool(crossed))


_PORTABLE_READ_SQL = """
    SELECT prefs.*,
           (SELECT body_hash FROM {request} WHERE account_id = prefs.account_id AND idempotency_key = %s)
               AS earlier_hash,
           (SELECT balance_after FROM {entry} WHERE account_id = prefs.account_id ORDER BY id DESC LIMIT 1)
               AS balance_now,
           (SELECT tokens FROM {rate} WHERE output_type = %s AND effective_from <= %s
            ORDER BY effective_from DESC LIMIT 1) AS rate_now
    FROM {prefs} prefs WHERE prefs.account_id = %s""".format(**_TABLES)


def _debit_portable(account: Account, *, output_type: str, quantity: int, event_id: str, idempotency_key: str,
                    fingerprint: str, now: datetime.datetime) -> _Debit:
    """The same debit where data-modifying WITH is not to be had (SQLite): one read, then the two inserts.

    The read is of the settings row (the ORM converts its fields), with the rest as extra columns.
    """
    params = [idempotency_key, output_type, connection.ops.adapt_datetimefield_value(now), account.pk]
    found = list(TokenSettings.objects.raw(_PORTABLE_READ_SQL, params))
    if not found:  # the account's first debit: its settings row is made once, then read as above
        token_settings(account)
        found = list(TokenSettings.objects.raw(_PORTABLE_READ_SQL, params))
    prefs = found[0]
    balance = prefs.balance_now or 0
    cost = (DEFAULT_RATES[output_type] if prefs.rate_now is None else prefs.rate_now) * quantity  # as rates_in_force
    if prefs.earlier_hash is not None:
        response = UsageRequest.objects.get(account=account, idempotency_key=idempotency_key).response
        return _Debit(prefs.earlier_hash, response, balance, cost, None, None, True, prefs)
    if balance < cost:
        return _Debit(None, None, balance, cost, None, None, True, prefs)
    entry = ledger_add(account=account, kind=TokenEntry.USAGE, amount=-cost, balance_before=balance,
                       output_type=output_type, quantity=quantity, event_id=event_id, created_at=now)
    UsageRequest.objects.create(account=account, idempotency_key=idempotency_key, body_hash=fingerprint,
                                response=usage_answer(cost, entry.balance_after, output_type, quantity, event_id,
                                                      entry.pk), created_at=now)
    return _Debit(None, None, balance, cost, entry.pk, entry.balance_after, True, prefs)


def usage_answer(cost: int, balance: int, output_type: str, quantity: int, event_id: str, entry_id: int) -> dict:
    """The body the API answers a debit with (and answers again for its idempotency key)."""
    return {"debited": cost, "balance": balance, "output_type": output_type, "quantity": quantity,
            "event_id": event_id, "entry_id": entry_id}


def tokens_spend(*, account: Account, output_type: str, quantity: int, event_id: str, idempotency_key: str,
                 may_queue_top_up: bool = True) -> UsageRecorded:
    """Debit rate × quantity tokens for usage, once per idempotency key, under the account lock.

    The same key and body again returns the first answer and debits nothing; the same key with
    another body raises IdempotencyKeyReused. Not enough tokens: InsufficientTokens, nothing
    debited and nothing remembered (a retry after a top-up can succeed). A debit that leaves the
    balance below the auto top-up threshold marks one top-up pending (none if one already is, or
    with `may_queue_top_up=False`) and says so: the caller hands it to the queue once committed.

    On PostgreSQL a debit is one statement (`_debit_postgresql`), and outside a transaction (the API's
    case) that statement is the whole transaction. An account on a test clock first reads its row under
    the lock. More only when the new balance crosses a threshold, or on the account's first debit (its
    settings row is made): then the settings are checked under the lock again, against the balance as
    it stands then, so two debits crossing at once still queue one top-up.
    """
    request_body = {"output_type": output_type, "quantity": quantity, "event_id": event_id}
    fingerprint = body_fingerprint(request_body)
    usage = {**request_body, "idempotency_key": idempotency_key, "fingerprint": fingerprint}
    if connection.vendor != "postgresql":
        with transaction.atomic():
            account = account_lock(account)
            now = clock.now(account)
            debit = _debit_portable(account, **usage, now=now)
            body = _debit_answer(debit, fingerprint, idempotency_key, output_type, quantity, event_id)
            if debit.earlier_hash is not None:
                return UsageRecorded(body, replayed=True)
            return UsageRecorded(body, top_up_queued=_thresholds_check(
                account, debit.prefs, debit.balance_after, now, may_queue_top_up))
    test_clock = _on_test_clock(account)
    with transaction.atomic() if test_clock else contextlib.nullcontext():
        if test_clock:
            account = account_lock(account)
        now = clock.now(account)
        debit = _debit_postgresql(account, **usage, now=now, may_queue_top_up=may_queue_top_up)
        body = _debit_answer(debit, fingerprint, idempotency_key, output_type, quantity, event_id)
        if debit.earlier_hash is not None:
            return UsageRecorded(body, replayed=True)
        if not debit.thresholds_crossed:
            return UsageRecorded(body)
        with transaction.atomic():
            account = account_lock(account)
            queued = _thresholds_check(account, token_settings(account), token_balance(account), now,
                                       may_queue_top_up)
        return UsageRecorded(body, top_up_queued=queued)


def _debit_answer(debit: _Debit, fingerprint: str, idempotency_key: str, output_type: str, quantity: int,
                  event_id: str) -> dict:
    """The API's body for a debit done or replayed; IdempotencyKeyReused or InsufficientTokens otherwise."""
    if debit.earlier_hash is not None:
        if debit.earlier_hash != fingerprint:
            raise IdempotencyKeyReused(idempotency_key)
        return debit.earlier_response
    if debit.entry_id is None:
        raise InsufficientTokens(needed=debit.cost, balance=debit.balance)
    return usage_answer(debit.cost, debit.balance_after, output_type, quantity, event_id, debit.entry_id)


def _thresholds_check(account: Account, prefs: TokenSettings, balance: int, now: datetime.datetime,
                      may_queue_top_up: bool) -> bool:
    """After a debit, under the account lock: mark one auto top-up pending if the balance is below its
    threshold and none is (returns whether it did), else flag or clear the low-balance alert."""
    queued = (may_queue_top_up and balance < prefs.auto_top_up_threshold
              and prefs.auto_top_up_pending_since is None and auto_top_up_allowed(account, prefs, now))
    if queued:
        # Real time: reconciliation releases a mark no task finished, however the account's clock stands.
        TokenSettings.objects.filter(pk=prefs.pk).update(auto_top_up_pending_since=clock.now())
    else:
        # With a top-up queued, the alert waits for it: a dip it lifts at once is no news.
        low_balance_check(account, prefs, balance)
    return queued


def auto_top_up_allowed(account: Account, prefs: TokenSettings, now: datetime.datetime) -> bool:
    """Auto top-up is on, has a package, and the account's calendar month's limit is not reached."""
    if not prefs.auto_top_up or prefs.auto_top_up_package_id is None:
        return False
    month_start = now.date().replace(day=1)
    next_month = (month_start + datetime.timedelta(days=32)).replace(day=1)
    done = TopUp.objects.filter(account=account, automatic=True, invoice__issued_on__gte=month_start,
                                invoice__issued_on__lt=next_month).count()
    return done < prefs.auto_top_up_monthly_limit


def low_balance_check(account: Account, prefs: TokenSettings, balance: int) -> None:
    # One alert per crossing: flag it when the balance goes below the
    # threshold, clear the flag once it is back at or above it.
    low = balance < prefs.low_balance_threshold
    if low and not prefs.low_balance_alerted:
        TokenSettings.objects.filter(pk=prefs.pk).update(low_balance_alerted=True)
        prefs.low_balance_alerted = True  # a second check in the same debit must not email again
        email_account(account, "Your Pictor token balance is low",
                      f"{account.name} has {balance:,} tokens left (your alert is set at "
                      f"{prefs.low_balance_threshold:,}). Top up from the Billing area.")
    elif not low and prefs.low_balance_alerted:
        TokenSettings.objects.filter(pk=prefs.pk).update(low_balance_alerted=False)
        prefs.low_balance_alerted = False


OUTPUT_TYPE_LABELS = dict(OUTPUT_TYPES)


@transaction.atomic
def token_settings_update(
    *, account: Account, low_balance_threshold: int, auto_top_up: bool, auto_top_up_threshold: int,
    auto_top_up_package: TokenPackage | None, auto_top_up_monthly_limit: int,
) -> TokenSettings:
    """Save an owner's low-balance and auto top-up choices.

    Switching auto top-up on needs a package and a usable default card (else
    NoDefaultCard, nothing saved) and clears the failure left by a decline.
    """
    account = account_lock(account)
    if auto_top_up:
        if auto_top_up_package is None:
            raise ValueError("auto top-up needs a package")
        card = default_card(account)
        if card is None:
            raise NoDefaultCard("Add a card before switching on auto top-up: it is charged to your default card.")
        if card.is_expired(clock.today(account)):
            raise NoDefaultCard("Your default card has expired. Add a card or make another one the default "
                                "before switching on auto top-up.")
    prefs = token_settings(account)
    prefs.low_balance_threshold = low_balance_threshold
    prefs.auto_top_up = auto_top_up
    prefs.auto_top_up_threshold = auto_top_up_threshold
    prefs.auto_top_up_package = auto_top_up_package
    prefs.auto_top_up_monthly_limit = auto_top_up_monthly_limit
    if auto_top_up:
        prefs.auto_top_up_failure = ""
    prefs.save()
    # A new threshold can start or end a dip at today's balance.
    low_balance_check(account, prefs, token_balance(account))
    return prefs


@dataclass(frozen=True)
class EstimateLine:
    output_type: str
    label: str
    rate: int  # tokens per output, in force now
    outputs: int  # guests × outputs per guest
    tokens: int


@dataclass(frozen=True)
class EventEstimate:
    """The tokens an event needs against the balance; where short, the cheapest package mix and its price."""

    guests: int
    lines: tuple[EstimateLine, ...]
    tokens_needed: int
    balance: int
    shortfall: int
    mix: tuple[tuple[TokenPackage, int], ...]
    quote: pricing.TopUpQuote | None  # None when nothing is short or no package is on sale

    @property
    def spare(self) -> int:
        return max(0, self.balance - self.tokens_needed)


def event_estimate(*, account: Account, guests: int, outputs_per_guest: dict[str, int]) -> EventEstimate:
    """Estimate an event at today's rates; the estimator shows it and its top-up buys `mix`."""
    rates = rates_in_force(clock.now(account))
    lines = tuple(
        EstimateLine(output_type, label, rates[output_type], guests * outputs_per_guest.get(output_type, 0),
                     rates[output_type] * guests * outputs_per_guest.get(output_type, 0))
        for output_type, label in OUTPUT_TYPES
    )
    needed = sum(line.tokens for line in lines)
    balance = token_balance(account)
    shortfall = max(0, needed - balance)
    mix, quote = (), None
    if shortfall:
        by_id = {package.pk: package for package in packages_on_sale()}
        offers = pricing.cheapest_package_mix([package_offer(p) for p in by_id.values()], shortfall)
        mix = tuple((by_id[offer.id], count) for offer, count in offers)
        if mix:
            quote = top_up_mix_quote(account=account, items=list(mix))
    return EventEstimate(guests=guests, lines=lines, tokens_needed=needed, balance=balance, shortfall=shortfall,
                         mix=mix, quote=quote)
