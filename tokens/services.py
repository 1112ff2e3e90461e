"""Tokens: the ledger and its balance, grants, top-ups (one package or a mix), usage with
idempotency, low-balance alerts and auto top-up.

Every write takes the account row lock first (`payments.services.account_lock`),
so a balance read and the entry written after it cannot interleave with
another request's: usage never takes the balance below zero, and debits that
cross the auto top-up threshold together trigger one top-up.
"""

import datetime
import hashlib
import json
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts.models import Account
from invoices.models import Invoice
from invoices.services import invoice_issue
from payments.models import CreditEntry
from payments.services import (
    NoDefaultCard,
    PaymentDeclined,
    account_lock,
    card_charge_default,
    charge_refund_quietly,
    credit_balance,
    default_card,
)
from pictor_billing import pricing
from pictor_billing.money import ZERO
from tokens.models import OUTPUT_TYPES, OutputRate, TokenEntry, TokenPackage, TokenSettings, TopUp, UsageRequest

SIGNUP_GRANT_TOKENS = 50
DEFAULT_RATES = {"photo": 0, "gif": 0, "video_capture": 0, "ai_image": 1, "ai_video": 10}


class InsufficientTokens(Exception):
    """The balance cannot cover a debit; nothing was written."""


def token_balance(account: Account) -> int:
    """The account's tokens: the running balance of its newest ledger entry (equal to the ledger's sum)."""
    latest = TokenEntry.objects.filter(account=account).order_by("-id").values_list("balance_after", flat=True).first()
    return latest or 0


def ledger_add(*, account: Account, kind: str, amount: int, **fields) -> TokenEntry:
    """Append one entry; call inside a transaction holding the account lock.

    Raises InsufficientTokens rather than let the balance go below zero (a
    database check constraint refuses it too).
    """
    balance = token_balance(account) + amount
    if balance < 0:
        raise InsufficientTokens(f"needs {-amount} tokens, has {balance - amount}")
    return TokenEntry.objects.create(account=account, kind=kind, amount=amount, balance_after=balance, **fields)


def tokens_grant_signup(*, account: Account) -> TokenEntry:
    """The one-time 50-token welcome grant (a constraint stops a second one)."""
    with transaction.atomic():
        account_lock(account)
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
    _low_balance_check(account, token_settings(account), entry.balance_after)
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


def tokens_top_up(
    *, account: Account, package: TokenPackage, token: str, now: datetime.datetime | None = None
) -> tuple[TopUp, bool]:
    """Buy a package: charge the default card, credit the tokens and issue its own invoice, in one transaction.

    The same form `token` again returns the first top-up and `False`.
    Raises NoDefaultCard or PaymentDeclined, in which case nothing changes.
    """
    return tokens_top_up_mix(account=account, items=[(package, 1)], token=token, now=now)


def tokens_top_up_mix(
    *, account: Account, items: list[tuple[TokenPackage, int]], token: str, now: datetime.datetime | None = None
) -> tuple[TopUp, bool]:
    """Buy several packages in one purchase with one invoice (the estimator's suggested mix)."""
    charge_box: list = []
    try:
        with transaction.atomic():
            account = account_lock(account)
            done = TopUp.objects.filter(token=token, account=account).first()
            if done is not None:
                return done, False
            return _top_up(account, items, token=token, automatic=False, now=now or timezone.now(),
                           charge_box=charge_box), True
    except Exception:
        for charge in charge_box:
            charge_refund_quietly(charge)
        raise


def _top_up(account, items, *, token, automatic, now, charge_box, prefs=None) -> TopUp:
    # Inside the caller's transaction, with the account locked.
    quote = top_up_mix_quote(account=account, items=items)
    description = f"{'Auto top-up' if automatic else 'Token top-up'}: {quote.package_name}, {quote.tokens:,} tokens"
    charge = card_charge_default(account=account, amount=quote.total_due, idempotency_key=f"topup:{token}",
                                 description=description)
    if charge is not None:
        charge_box.append(charge)
    invoice = invoice_issue(
        account=account, kind=Invoice.TOP_UP, description=description, lines=quote.lines,
        subtotal=quote.list_subtotal, discount_total=ZERO, credit_applied=quote.credit_applied,
        total=quote.total_due, status=Invoice.PAID, issued_on=now.date(), charge=charge,
    )
    if quote.credit_applied:
        CreditEntry.objects.create(account=account, kind=CreditEntry.APPLIED, amount=-quote.credit_applied,
                                   invoice=invoice, note=f"Applied to {invoice.number}")
    entry = ledger_add(account=account, kind=TokenEntry.AUTO_TOP_UP if automatic else TokenEntry.TOP_UP,
                       amount=quote.tokens, invoice=invoice, note=quote.package_name)
    single = items[0][0] if len(items) == 1 and items[0][1] == 1 else None
    _low_balance_check(account, prefs or token_settings(account), entry.balance_after)
    return TopUp.objects.create(account=account, package=single, automatic=automatic, tokens=quote.tokens,
                                token=token, invoice=invoice)


def rates_in_force(now: datetime.datetime) -> dict[str, int]:
    """Tokens per output of each type at this moment (SPEC's defaults where no rate is recorded)."""
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


@dataclass(frozen=True)
class UsageResult:
    """What the usage API answers: an HTTP status and a JSON body."""

    status: int
    body: dict
    replayed: bool = False


def body_fingerprint(body: dict) -> str:
    """A stable hash of a request body, to tell a true retry from a reused key."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def tokens_spend(
    *, account: Account, output_type: str, quantity: int, event_id: str, idempotency_key: str,
    now: datetime.datetime | None = None,
) -> UsageResult:
    """Debit rate × quantity tokens for usage, once per idempotency key.

    The same key and body again returns the first answer and debits nothing;
    the same key with another body is a 409. Not enough tokens: 402, nothing
    debited (and nothing remembered, so a retry after a top-up can succeed).
    With auto top-up on, a debit that leaves the balance below its threshold
    buys the chosen package in the same transaction (at most N a month), and a
    debit the balance cannot cover buys it first and tries once more.
    """
    now = now or timezone.now()
    request_body = {"output_type": output_type, "quantity": quantity, "event_id": event_id}
    fingerprint = body_fingerprint(request_body)
    charge_box: list = []  # an auto top-up's charge, refunded if this transaction cannot commit
    try:
        with transaction.atomic():
            account = account_lock(account)
            earlier = UsageRequest.objects.filter(account=account, idempotency_key=idempotency_key).first()
            if earlier is not None:
                if earlier.body_hash != fingerprint:
                    return UsageResult(409, {"error": "idempotency_key_reused",
                                             "detail": "This idempotency_key was used with a different body."})
                return UsageResult(201, earlier.response, replayed=True)
            cost = rates_in_force(now)[output_type] * quantity
            prefs = token_settings(account)
            usage = {"kind": TokenEntry.USAGE, "amount": -cost, "output_type": output_type, "quantity": quantity,
                     "event_id": event_id}
            try:
                entry = ledger_add(account=account, **usage)
            except InsufficientTokens:
                # With auto top-up on, buy first and try once more; otherwise (or if still short) a 402.
                topped_up = None
                if _auto_top_up_allowed(account, prefs, now):
                    topped_up = _auto_top_up(account, prefs, now, charge_box, token=f"auto-{uuid.uuid4().hex}")
                try:
                    entry = ledger_add(account=account, **usage)
                except InsufficientTokens:
                    balance = topped_up or token_balance(account)
                    return UsageResult(402, {"error": "insufficient_tokens", "balance": balance, "needed": cost,
                                             "detail": f"This needs {cost} tokens and the balance is {balance}."})
            balance = entry.balance_after
            if balance < prefs.auto_top_up_threshold and _auto_top_up_allowed(account, prefs, now):
                balance = _auto_top_up(account, prefs, now, charge_box, token=f"auto-{account.pk}-{entry.pk}") \
                    or balance
            _low_balance_check(account, prefs, balance)
            body = {"debited": cost, "balance": balance, "output_type": output_type,
                    "quantity": quantity, "event_id": event_id, "entry_id": entry.pk}
            UsageRequest.objects.create(account=account, idempotency_key=idempotency_key, body_hash=fingerprint,
                                        response=body)
            return UsageResult(201, body)
    except Exception:
        for charge in charge_box:
            charge_refund_quietly(charge)
        raise


def _auto_top_up_allowed(account: Account, prefs: TokenSettings, now: datetime.datetime) -> bool:
    """Auto top-up is on, has a package, and this calendar month's limit is not reached."""
    if not prefs.auto_top_up or prefs.auto_top_up_package_id is None:
        return False
    # Counted by invoice date, which follows `now`; created_at is the wall clock.
    month_start = now.date().replace(day=1)
    next_month = (month_start + datetime.timedelta(days=32)).replace(day=1)
    done = TopUp.objects.filter(account=account, automatic=True, invoice__issued_on__gte=month_start,
                                invoice__issued_on__lt=next_month).count()
    return done < prefs.auto_top_up_monthly_limit


def _auto_top_up(account: Account, prefs: TokenSettings, now: datetime.datetime, charge_box: list, *,
                 token: str) -> int | None:
    """Buy the chosen package now; the new balance, or None when it could not be bought (then switched off).

    Called with the account locked, in the usage debit's transaction:
    concurrent debits queue on that lock, so the one that takes the balance
    below the threshold tops up and the next ones see the new balance.
    """
    try:
        with transaction.atomic():  # a savepoint: a decline undoes the top-up, never the usage
            if not packages_on_sale().filter(pk=prefs.auto_top_up_package_id).exists():
                raise pricing.PricingError("the auto top-up package is not on sale")
            _top_up(account, [(prefs.auto_top_up_package, 1)], token=token, automatic=True, now=now,
                    charge_box=charge_box, prefs=prefs)
        return token_balance(account)
    except (PaymentDeclined, NoDefaultCard, pricing.PricingError) as error:
        if isinstance(error, pricing.PricingError):
            reason = f"The {prefs.auto_top_up_package.name} package can no longer be bought."
        else:
            reason = getattr(error, "reason", "") or "No default card."
        TokenSettings.objects.filter(pk=prefs.pk).update(auto_top_up=False, auto_top_up_failure=reason[:200])
        prefs.auto_top_up, prefs.auto_top_up_failure = False, reason[:200]
        _email_owners(account, "Auto top-up switched off",
                      f"An automatic token top-up failed: {reason}\nAuto top-up is now off. Add a card and switch "
                      "it on again on the Token activity page.")
        return None


def _low_balance_check(account: Account, prefs: TokenSettings, balance: int) -> None:
    # One alert per crossing: flag it when the balance goes below the
    # threshold, clear the flag once it is back at or above it.
    low = balance < prefs.low_balance_threshold
    if low and not prefs.low_balance_alerted:
        TokenSettings.objects.filter(pk=prefs.pk).update(low_balance_alerted=True)
        prefs.low_balance_alerted = True  # a second check in the same debit must not email again
        _email_owners(account, "Your Pictor token balance is low",
                      f"{account.name} has {balance} tokens left (your alert is set at "
                      f"{prefs.low_balance_threshold}). Top up from the Billing area.")
    elif not low and prefs.low_balance_alerted:
        TokenSettings.objects.filter(pk=prefs.pk).update(low_balance_alerted=False)
        prefs.low_balance_alerted = False


def _email_owners(account: Account, subject: str, message: str) -> None:
    recipients = list(account.users.filter(is_active=True).values_list("email", flat=True))
    if recipients:
        # Sent once the transaction commits, so a rolled-back change never emails anyone; `robust`
        # logs a mail failure instead of raising it into a request whose writes are already committed
        # (send_mail's fail_silently is deprecated in Django 6.1).
        transaction.on_commit(lambda: send_mail(subject, message, settings.DEFAULT_FROM_EMAIL, recipients),
                              robust=True)


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
        if card.is_expired(timezone.now().date()):
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
    _low_balance_check(account, prefs, token_balance(account))
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


def event_estimate(*, account: Account, guests: int, outputs_per_guest: dict[str, int],
                   now: datetime.datetime | None = None) -> EventEstimate:
    """Estimate an event at today's rates; the estimator shows it and its top-up buys `mix`."""
    rates = rates_in_force(now or timezone.now())
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
