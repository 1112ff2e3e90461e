"""Buying tokens: a package or a mix (Top Up, the estimator), and auto top-up.

Each purchase of tokens goes through `billing.checkout`: the card is authorized outside any
lock, the top-up is recorded (invoice of its own, tokens credited) only if its quote is the one
authorized, then the money is captured.

Auto top-up (docs/rules.md, Tokens): a usage debit that leaves the balance below the threshold queues one
top-up (`auto_top_up_pending_since` marks it: at most one per account), bought by a task once
the debit has committed; a debit the balance cannot cover buys first, outside the balance lock,
then tries once more. Either way one debit buys at most one top-up.
"""

import datetime
import logging
import uuid

from django.db import transaction
from django.tasks import task

from accounts.models import Account
from accounts.services import account_lock, email_account
from billing.checkout import (
    OrderChanged,
    PaymentNeedsAction,
    PaymentPending,
    checkout_run,
    quote_still_holds,
    settle_lock,
    settler,
)
from invoices.models import Invoice
from invoices.services import issuing_invoice
from payments.models import CreditEntry, PaymentAttempt
from payments.services import NoDefaultCard, PaymentDeclined, attempt_begin, attempts_unsettled, chargeable_card
from pictor_billing import clock, pricing
from pictor_billing.form_tokens import quote_digest_matches
from pictor_billing.money import ZERO
from tokens.models import TokenEntry, TokenPackage, TokenSettings, TopUp
from tokens.services import (
    auto_top_up_allowed,
    ledger_add,
    low_balance_check,
    packages_on_sale,
    token_balance,
    token_settings,
    top_up_mix_quote,
)

log = logging.getLogger(__name__)

# Top Up's and the estimator's digests are signed with these salts.
TOP_UP_DIGEST_SALT = "billing.top_up.quote"
ESTIMATE_DIGEST_SALT = "billing.estimate.quote"
# A queued auto top-up that no task has finished in this long is released by reconciliation.
AUTO_TOP_UP_STALE = datetime.timedelta(minutes=10)


def top_up_description(quote: pricing.TopUpQuote, *, automatic: bool) -> str:
    return f"{'Auto top-up' if automatic else 'Token top-up'}: {quote.package_name}, {quote.tokens:,} tokens"


def tokens_top_up(*, account: Account, package: TokenPackage, token: str, shown_digest: str | None = None,
                  digest_salt: str = TOP_UP_DIGEST_SALT) -> tuple[TopUp, bool]:
    """Buy one package with the default card: tokens credited at once, an invoice of its own.

    The same form `token` again returns the first top-up and False. With `shown_digest`, a quote
    that differs from the one on screen raises OrderChanged and nothing is charged. Raises
    NoDefaultCard, PaymentDeclined (nothing changes), PaymentNeedsAction or PaymentPending.
    """
    return tokens_top_up_mix(account=account, items=[(package, 1)], token=token, shown_digest=shown_digest,
                             digest_salt=digest_salt)


def tokens_top_up_mix(*, account: Account, items: list[tuple[TokenPackage, int]], token: str,
                      shown_digest: str | None = None, digest_salt: str = TOP_UP_DIGEST_SALT) -> tuple[TopUp, bool]:
    """Buy several packages in one purchase with one invoice (the estimator's suggested mix)."""
    with transaction.atomic():
        account = account_lock(account)
        done = TopUp.objects.filter(token=token, account=account).select_related("invoice").first()
        if done is not None:
            return done, False
        for attempt in attempts_unsettled(account, (PaymentAttempt.TOP_UP,)):
            if attempt.idempotency_key.startswith(f"top_up:{token}:") or attempt.status == PaymentAttempt.UNKNOWN:
                if attempt.status == PaymentAttempt.REQUIRES_ACTION:
                    raise PaymentNeedsAction(attempt)
                raise PaymentPending(attempt)
        quote = top_up_mix_quote(account=account, items=items)
        if shown_digest is not None and not quote_digest_matches(shown_digest, quote, account_id=account.pk,
                                                                 salt=digest_salt):
            raise OrderChanged(quote=quote)
        card = chargeable_card(account)
        order = {"items": [[package.pk, count] for package, count in items], "token": token, "automatic": False,
                 "fingerprint": pricing.quote_fingerprint(quote)}
        if not quote.total_due:
            return _record(account, quote, order), True
        attempt = attempt_begin(account=account, card=card, purpose=PaymentAttempt.TOP_UP,
                                kind=PaymentAttempt.AUTHORIZE, amount=quote.total_due, key_base=f"top_up:{token}",
                                description=top_up_description(quote, automatic=False), order=order)
    return checkout_run(attempt), True


@settler(PaymentAttempt.TOP_UP, PaymentAttempt.AUTO_TOP_UP)
def top_up_settle(attempt: PaymentAttempt) -> TopUp:
    """Record the top-up an authorized attempt pays for, if its quote is still the one authorized."""
    order = attempt.order
    with transaction.atomic():
        account, attempt = settle_lock(attempt)
        if attempt.order_recorded_at is not None:
            return TopUp.objects.select_related("invoice").get(token=order["token"], account=account)
        packages = {package.pk: package for package in packages_on_sale().filter(pk__in=[p for p, _ in order["items"]])}
        if len(packages) != len(order["items"]):
            raise OrderChanged("A package is no longer on sale.")
        quote = top_up_mix_quote(account=account, items=[(packages[pk], count) for pk, count in order["items"]])
        if not quote_still_holds(quote, attempt):
            raise OrderChanged(quote=quote)
        return _record(account, quote, order, attempt=attempt)


def _record(account: Account, quote: pricing.TopUpQuote, order: dict, *,
            attempt: PaymentAttempt | None = None) -> TopUp:
    """Write the top-up: its invoice, the credit it used, the tokens. Inside the caller's locked transaction."""
    now = clock.now(account)
    automatic = order["automatic"]
    paid = attempt is None
    items = order["items"]
    single = items[0][0] if len(items) == 1 and items[0][1] == 1 else None
    prefs = token_settings(account)
    # The invoice takes its number as this block ends, the last writes before the caller commits.
    with issuing_invoice(
        account=account, kind=Invoice.TOP_UP, description=top_up_description(quote, automatic=automatic),
        lines=quote.lines, subtotal=quote.list_subtotal, discount_total=ZERO, credit_applied=quote.credit_applied,
        total=quote.total_due, status=Invoice.PAID if paid else Invoice.OPEN, issued_on=now.date(),
        status_reason="Issued; nothing to charge" if paid else "Issued; the card is authorized",
        attempt_id=attempt.pk if attempt else None,
    ) as invoice:
        if quote.credit_applied:
            CreditEntry.objects.create(account=account, kind=CreditEntry.APPLIED, amount=-quote.credit_applied,
                                       invoice=invoice, note="Applied to this top-up", created_at=now)
        entry = ledger_add(account=account, kind=TokenEntry.AUTO_TOP_UP if automatic else TokenEntry.TOP_UP,
                           amount=quote.tokens, invoice=invoice, note=quote.package_name, created_at=now)
        low_balance_check(account, prefs, entry.balance_after)
        if automatic:
            TokenSettings.objects.filter(pk=prefs.pk).update(auto_top_up_pending_since=None)
        if attempt is not None:
            PaymentAttempt.objects.filter(pk=attempt.pk).update(invoice=invoice, order_recorded_at=now)
        top_up = TopUp.objects.create(account=account, package_id=single, automatic=automatic,
                                      tokens=quote.tokens, token=order["token"], invoice=invoice, created_at=now)
    return top_up


# --- auto top-up ------------------------------------------------------------------------------------

@task
def auto_top_up_task(account_id: int) -> None:
    """Buy the auto top-up a usage debit queued (enqueued once that debit has committed).

    The debit left the low-balance alert to this top-up; if nothing is bought, the alert is
    decided now, at the balance the debit left.
    """
    account = Account.objects.get(pk=account_id)
    if auto_top_up_buy(account=account, claim=False) is None:
        with transaction.atomic():
            account = account_lock(account)
            low_balance_check(account, token_settings(account), token_balance(account))


def auto_top_up_queue(account: Account) -> None:
    """Hand a queued auto top-up to the task queue; call once the debit that queued it has committed."""
    auto_top_up_task.enqueue(account.pk)


def auto_top_up_buy(*, account: Account, claim: bool) -> TopUp | None:
    """Buy the account's auto top-up package now, off-session; the top-up, or None when none was bought.

    `claim=False`: a debit queued it (the pending mark is set) and this buys it. `claim=True`:
    a debit the balance cannot cover buys first; it takes the one pending mark itself, and buys
    nothing if another top-up is already under way. A decline, a card that needs authentication
    or a package taken off sale switches auto top-up off, shows a banner and emails once.
    """
    with transaction.atomic():
        account = account_lock(account)
        prefs = token_settings(account)
        if claim == (prefs.auto_top_up_pending_since is not None):
            return None  # claiming: one is under way already; buying a queued one: it was bought
        now = clock.now(account)
        if not auto_top_up_allowed(account, prefs, now):
            TokenSettings.objects.filter(pk=prefs.pk).update(auto_top_up_pending_since=None)
            return None
        package = packages_on_sale().filter(pk=prefs.auto_top_up_package_id).first()
        if package is None:
            _switch_off(account, prefs, f"The {prefs.auto_top_up_package.name} package can no longer be bought.")
            return None
        try:
            card = chargeable_card(account)
        except (NoDefaultCard, PaymentDeclined) as error:
            _switch_off(account, prefs, getattr(error, "reason", "") or "No default card.")
            return None
        quote = top_up_mix_quote(account=account, items=[(package, 1)])
        order = {"items": [[package.pk, 1]], "token": f"auto-{account.pk}-{uuid.uuid4().hex}", "automatic": True,
                 "fingerprint": pricing.quote_fingerprint(quote)}
        if not quote.total_due:
            return _record(account, quote, order)
        TokenSettings.objects.filter(pk=prefs.pk).update(auto_top_up_pending_since=clock.now())  # real time
        attempt = attempt_begin(account=account, card=card, purpose=PaymentAttempt.AUTO_TOP_UP,
                                kind=PaymentAttempt.AUTHORIZE, amount=quote.total_due, off_session=True,
                                key_base=f"auto_top_up:{order['token']}",
                                description=top_up_description(quote, automatic=True), order=order)
    try:
        return checkout_run(attempt)
    except PaymentDeclined as declined:
        with transaction.atomic():
            account = account_lock(account)
            _switch_off(account, token_settings(account), declined.reason)
        return None
    except PaymentPending:
        return None  # no answer yet: the mark stays until reconciliation settles the attempt
    except (OrderChanged, PaymentNeedsAction):
        auto_top_up_release(account)
        return None


def auto_top_up_release(account: Account) -> None:
    """Clear the pending mark, so a later debit may queue a top-up again."""
    TokenSettings.objects.filter(account=account).update(auto_top_up_pending_since=None)


def _switch_off(account: Account, prefs: TokenSettings, reason: str) -> None:
    # Inside the caller's transaction with the account locked.
    TokenSettings.objects.filter(pk=prefs.pk).update(auto_top_up=False, auto_top_up_failure=reason[:200],
                                                     auto_top_up_pending_since=None)
    email_account(account, "Auto top-up switched off",
                        f"An automatic token top-up failed: {reason}\nAuto top-up is now off. Add a card and switch "
                        "it on again on the Token activity page.")
