"""Renewals and dunning: what the billing run does for each account and billing date.

1. `renewals_prepare` (database work only, accounts locked; a batch of accounts in one transaction,
   `accounts_prepare` per batch and `account_prepare` for one): the licenses due on the date that are
   cancelled expire; the others renew in one invoice (issued open, numbered in the year it is issued,
   priced as of the billing date, service period printed), the credit balance first; a pending charge
   attempt is recorded. One `Renewal` per account and date (a unique constraint): re-running, two
   workers, or a worker killed half-way bill nothing twice.
2. The charge step (`renewal_charges_send`) sends pending renewal charges to the processor from a
   thread pool, outside every transaction, and records and settles the answers a claimed batch at a
   time (`renewal_charges_outcome`; `renewal_charge_outcome` for one).
3. Dunning: a failed charge leaves the licenses active and past due; it is retried on F+1, F+3 and
   F+5 (F the day of the first attempt; one attempt per invoice in flight, by a constraint). After
   the last failure the invoice fails, a credit note cancels it, the credit it used returns, and its
   licenses expire, paid until the billing date, their live events ended.
"""

import datetime
import logging
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field, replace
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from django.urls import reverse

from accounts.models import Account
from accounts.services import account_lock, email_account, email_accounts
from billing.models import Renewal
from invoices.models import Invoice
from invoices.services import credit_note_issue, invoice_status_set, issuing_invoices
from licenses import catalogue
from licenses.models import EventLease, License, LicenseTerm, PriceListVersion, RenewalGroup
from licenses.services import monthly_group, prices_in_force
from payments.gateway import PaymentOutcome, ProcessorUnavailable
from payments.models import CreditEntry, PaymentAttempt
from payments.services import (
    attempt_begin,
    attempt_call,
    attempt_send,
    attempts_begin_first,
    attempts_record,
    credit_balance,
    credit_balances,
    default_card,
    default_cards,
)
from pictor_billing import clock, pricing
from pictor_billing.bulk import rows_update
from pictor_billing.money import ZERO, format_usd
from pictor_billing.pricing import QuoteLine

log = logging.getLogger(__name__)

RETRY_AFTER_DAYS = (1, 3, 5)  # retries on F+1, F+3, F+5
# A renewal charge handed to the processor and not answered this long (its worker died) is claimed
# again and re-sent with the same idempotency key (BILLING_CLAIM_TIMEOUT_SECONDS, 5 minutes by default).
CLAIM_TIMEOUT = datetime.timedelta(seconds=settings.BILLING_CLAIM_TIMEOUT_SECONDS)


class NothingToPay(Exception):
    """The invoice is not open (paid meanwhile, or failed): Pay now has nothing to do."""


# --- what is due ------------------------------------------------------------------------------------

def due_dates(account: Account, upto: datetime.date) -> list[datetime.date]:
    """The billing dates of this account's active licenses on or before `upto`, oldest first."""
    return sorted(set(License.objects.filter(account=account, period_end__lte=upto).active()
                      .values_list("period_end", flat=True)))


def accounts_due(upto: datetime.date, *, test_accounts: bool = False):
    """Ids of the accounts with a renewal or a retry due on or before `upto` (test accounts left out)."""
    renewing = License.objects.active().filter(period_end__lte=upto).values_list("account_id", flat=True)
    retrying = Renewal.objects.filter(status=Renewal.PAST_DUE, next_retry_on__lte=upto).values_list(
        "account_id", flat=True)
    accounts = Account.objects.filter(Q(pk__in=renewing) | Q(pk__in=retrying))
    if not test_accounts:
        accounts = accounts.filter(is_test_account=False)
    return accounts.order_by("pk").values_list("pk", flat=True)


# --- 1. the database work ---------------------------------------------------------------------------

def _renewing(lic: License, billing_date: datetime.date, anchor_day: int | None) -> pricing.RenewingLicense:
    """A license as it renews on `billing_date`: at its scheduled change, if it has one.

    Annual -> monthly joins the monthly anchor, pro-rata to its next date (or sets the anchor, when
    there is none); monthly -> annual starts a year from the billing date.
    """
    tier, period = lic.renews_as
    if period == pricing.ANNUAL:
        if lic.period == pricing.MONTHLY:
            return pricing.RenewingLicense(lic.pk, tier, period, pricing.add_years(billing_date, 1))
        renews_to = pricing.next_annual_date(billing_date, lic.group.anchor_on)
        return pricing.RenewingLicense(lic.pk, tier, period, renews_to)
    if lic.period == pricing.ANNUAL and anchor_day is not None:
        cycle_start, cycle_end = pricing.billing_cycle(billing_date, anchor_day)
        if cycle_start != billing_date:
            return pricing.RenewingLicense(lic.pk, tier, period, cycle_end,
                                           prorata_days=(cycle_end - billing_date).days,
                                           cycle_days=(cycle_end - cycle_start).days)
    anchor_day = billing_date.day if anchor_day is None else anchor_day
    return pricing.RenewingLicense(lic.pk, tier, period, pricing.next_monthly_date(billing_date, anchor_day))


def renewal_quote(account: Account, billing_date: datetime.date, licenses=None) -> pricing.RenewalQuote | None:
    """What the account's licenses due on `billing_date` renew for (the preview and the run both ask this);
    None when nothing renews that day."""
    due = list(licenses if licenses is not None else License.objects.filter(
        account=account, period_end=billing_date).active().select_related("group"))
    renewing = [lic for lic in due if not lic.cancel_at_period_end]
    if not renewing:
        return None
    others = _others_renewing([account.pk], due=[lic.pk for lic in due]).get(account.pk, 0)
    return _quote(account, billing_date, renewing, others=others, prices=prices_in_force(billing_date),
                  credit=credit_balance(account))


def _others_renewing(account_ids, *, due) -> dict[int, int]:
    """{account id: its licenses not cancelled, but for those due}: the rest of the bracket."""
    # Every other license not cancelled is active on that date, whatever its own billing date: one due
    # earlier renews first (the run bills dates oldest first), so a reminder quoted ahead counts it too.
    return dict(License.objects.filter(account_id__in=account_ids).renewing().exclude(pk__in=due).order_by()
                .values("account_id").annotate(count=Count("pk")).values_list("account_id", "count"))


def _quote(account: Account, billing_date: datetime.date, renewing: list[License], *, others: int, prices: dict,
           credit: Decimal) -> pricing.RenewalQuote:
    return pricing.quote_renewal(
        billing_date=billing_date, prices=prices, others_active=others, credit_balance=credit,
        renewing=[_renewing(lic, billing_date, account.monthly_anchor_day) for lic in renewing],
    )


def licenses_expire(account: Account, licenses, *, paid_until: datetime.date) -> int:
    """Expire these licenses (inside the caller's locked transaction): paid until that date, live
    events ended, and the monthly anchor cleared when no monthly license is left."""
    ids = [lic.pk for lic in licenses]
    if not ids:
        return 0
    now = clock.now(account)
    License.objects.filter(pk__in=ids).update(status=License.EXPIRED, ended_on=paid_until, period_end=paid_until)
    EventLease.objects.filter(license_id__in=ids, stopped_at__isnull=True).update(stopped_at=now)
    groups_close(account, today=paid_until)
    return len(ids)


def groups_close(account: Account, *, today: datetime.date) -> None:
    """End the renewal groups with no active license left; with the monthly one goes the anchor."""
    empty = RenewalGroup.objects.filter(account=account, ended_on__isnull=True).exclude(
        licenses__status__in=[License.ACTIVE, License.PAST_DUE])
    if empty.filter(period=pricing.MONTHLY).exists():
        Account.objects.filter(pk=account.pk).update(monthly_anchor_day=None)
        account.monthly_anchor_day = None
    empty.update(ended_on=today)


def renewals_prepare(due: list[tuple[Account, datetime.date]]) -> int:
    """Renew (or expire) each account's licenses due on its date, a batch of accounts in one transaction:
    per account one invoice (issued open, priced as of its billing date, the credit balance first; all
    numbered as the transaction ends) and a pending charge. How many renewals were invoiced.

    Idempotent: an account's date recorded already is left alone (one Renewal per account and date, a
    unique constraint). Should two runs race for an account anyway, the batch is done again one
    account at a time, each in a transaction of its own.
    """
    if not due:
        return 0
    try:
        with transaction.atomic():
            return _renewals_write(due)
    except IntegrityError:
        if len(due) > 1:
            return sum(renewals_prepare([one]) for one in due)
        account, billing_date = due[0]
        if Renewal.objects.filter(account=account, billing_date=billing_date).exists():
            return 0  # another worker recorded this date in the same instant (the constraint held): it is done
        raise


@dataclass
class _Renewing:
    """One account's renewal being written: what renews, its quote, and its invoice once issued."""

    account: Account
    billing_date: datetime.date
    licenses: list[License]
    quote: pricing.RenewalQuote
    invoice: Invoice | None = None

    @property
    def paid(self) -> bool:
        return not self.quote.total_due


def _renewals_write(due: list[tuple[Account, datetime.date]]) -> int:
    # Every batch locks its accounts in id order, so two batches that share accounts never wait on each other.
    accounts = {account.pk: account for account in Account.objects.select_for_update()
                .filter(pk__in=[account.pk for account, _ in due]).order_by("pk")}
    dates = {account.pk: billing_date for account, billing_date in due}
    recorded = set(Renewal.objects.filter(account_id__in=dates, billing_date__in=set(dates.values()))
                   .values_list("account_id", "billing_date"))
    dates = {pk: billing_date for pk, billing_date in dates.items() if (pk, billing_date) not in recorded}
    due_licenses: dict[int, list[License]] = {}
    for lic in (License.objects.select_for_update(of=("self",)).select_related("group")
                .filter(account_id__in=dates, period_end__in=set(dates.values())).active()):
        if lic.period_end == dates[lic.account_id]:
            due_licenses.setdefault(lic.account_id, []).append(lic)
    renewing, nothing = {}, []
    for account_id in sorted(due_licenses):
        account, billing_date, licenses = accounts[account_id], dates[account_id], due_licenses[account_id]
        licenses_expire(account, [lic for lic in licenses if lic.cancel_at_period_end], paid_until=billing_date)
        renewing[account_id] = [lic for lic in licenses if not lic.cancel_at_period_end]
        if not renewing[account_id]:
            del renewing[account_id]
            nothing.append(Renewal(account=account, billing_date=billing_date, status=Renewal.NOTHING,
                                   created_at=clock.now(account)))
    others = _others_renewing(list(renewing), due=[lic.pk for licenses in due_licenses.values() for lic in licenses])
    credits = credit_balances(list(renewing))
    prices = {billing_date: prices_in_force(billing_date) for billing_date in {dates[pk] for pk in renewing}}
    plans = [_Renewing(accounts[pk], dates[pk], licenses, _quote(
        accounts[pk], dates[pk], licenses, others=others.get(pk, 0), prices=prices[dates[pk]], credit=credits[pk]))
        for pk, licenses in renewing.items()]
    with issuing_invoices([_renewal_invoice(plan) for plan in plans]) as invoices:
        for plan, invoice in zip(plans, invoices, strict=True):
            plan.invoice = invoice
        CreditEntry.objects.bulk_create(
            CreditEntry(account=plan.account, kind=CreditEntry.APPLIED, amount=-plan.quote.credit_applied,
                        invoice=plan.invoice, note="Applied to a renewal", created_at=clock.now(plan.account))
            for plan in plans if plan.quote.credit_applied)
        Renewal.objects.bulk_create(nothing + [
            Renewal(account=plan.account, billing_date=plan.billing_date, invoice=plan.invoice,
                    status=Renewal.PAID if plan.paid else Renewal.ISSUED, created_at=clock.now(plan.account))
            for plan in plans])
        _licenses_renew(plans)
        LicenseTerm.objects.bulk_create(
            LicenseTerm(license_id=renewed.id, kind=LicenseTerm.RENEWAL, starts_on=plan.billing_date,
                        ends_on=renewed.renews_to, tier=renewed.tier, period=renewed.period,
                        list_price=renewed.list_price, rate=renewed.rate, paid=renewed.paid, invoice=plan.invoice,
                        created_at=clock.now(plan.account))
            for plan in plans for renewed in plan.quote.licenses)
        _charges_record([(plan.account, plan.invoice, f"Renewal of {pricing.day_words(plan.billing_date)}")
                         for plan in plans if not plan.paid])
    _receipts([(plan.account, plan.invoice) for plan in plans if plan.paid])
    return len(plans)


def _renewal_invoice(plan: _Renewing) -> dict:
    """The renewal's invoice document (for `issuing_invoices`)."""
    quote, billing_date = plan.quote, plan.billing_date
    plural = "s" if quote.quantity > 1 else ""
    return dict(
        account=plan.account, kind=Invoice.RENEWAL, lines=quote.lines,
        description=f"Renewal of {quote.quantity} license{plural} on {billing_date:%b} {billing_date.day}, "
                    f"{billing_date.year}",
        subtotal=quote.subtotal, discount_total=quote.volume_discount, credit_applied=quote.credit_applied,
        total=quote.total_due, status=Invoice.PAID if plan.paid else Invoice.OPEN,
        issued_on=clock.today(plan.account),
        status_reason="Issued; paid by credit" if plan.paid else "Issued; the default card is charged next",
        service_from=billing_date, service_to=quote.service_to,
    )


RENEWED_FIELDS = ["period_start", "period_end", "list_price", "discount_rate"]
CHANGED_FIELDS = [*RENEWED_FIELDS, "tier", "period", "next_tier", "next_period", "group"]


def _licenses_renew(plans: list[_Renewing]) -> None:
    """Each renewing license takes its new period, list price and rate; one with a scheduled change also
    its new tier, period and group. One UPDATE per set of new values, which a batch's licenses share."""
    same: dict[tuple, list[int]] = {}
    changed, switching = [], []
    for plan in plans:
        changing = [lic for lic in plan.licenses if lic.change_scheduled]
        switched = _changes_apply(plan.account, plan.billing_date, changing) if changing else {}
        if switched:
            switching.append(plan)
        renewed_as = {renewed.id: renewed for renewed in plan.quote.licenses}
        for lic in plan.licenses:
            renewed = renewed_as[lic.pk]
            lic.period_start, lic.period_end = switched.get(lic.pk, plan.billing_date), renewed.renews_to
            lic.list_price, lic.discount_rate = renewed.list_price, renewed.rate
            if lic in changing:
                changed.append(lic)
            else:
                same.setdefault(tuple(getattr(lic, name) for name in RENEWED_FIELDS), []).append(lic.pk)
    for values, ids in same.items():
        License.objects.filter(pk__in=ids).update(**dict(zip(RENEWED_FIELDS, values, strict=True)))
    if changed:
        rows_update(License, changed, CHANGED_FIELDS)
    for plan in switching:  # once the licenses that moved group are written
        groups_close(plan.account, today=plan.billing_date)


def _changes_apply(account: Account, billing_date: datetime.date, renewing: list[License]) -> dict[int, datetime.date]:
    """Scheduled changes take effect: each license takes its new tier and period, and a license that
    switches period moves group (monthly: the anchor group, which it sets if there is none; annual:
    one new group for those switching on this date). {license id: its period's start} for those that
    switched (pro-rata to the anchor: the whole cycle, so a later change's unused share is measured
    the same way as for the others)."""
    starts, annual_group = {}, None
    for lic in renewing:
        if not lic.change_scheduled:
            continue
        tier, period = lic.renews_as
        if period != lic.period and period == pricing.MONTHLY:
            if account.monthly_anchor_day is None:
                Account.objects.filter(pk=account.pk).update(monthly_anchor_day=billing_date.day)
                account.monthly_anchor_day = billing_date.day
            lic.group = monthly_group(account, anchor_on=billing_date)
            starts[lic.pk] = pricing.billing_cycle(billing_date, account.monthly_anchor_day)[0]
        elif period != lic.period:
            annual_group = annual_group or RenewalGroup.objects.create(
                account=account, period=pricing.ANNUAL, anchor_on=billing_date, created_at=clock.now(account))
            lic.group = annual_group
            starts[lic.pk] = billing_date
        lic.tier, lic.period, lic.next_tier, lic.next_period = tier, period, "", ""
    return starts


def _charge_record(account: Account, invoice: Invoice, renewal: Renewal, *, description: str,
                   off_session: bool = True) -> PaymentAttempt:
    # A pending charge of the open invoice on the default card (a retry, or Pay now). The charge step sends it.
    attempt = attempt_begin(account=account, card=default_card(account), purpose=PaymentAttempt.RENEWAL,
                            kind=PaymentAttempt.CHARGE, amount=invoice.total, key_base=f"invoice:{invoice.pk}",
                            description=description, invoice=invoice, off_session=off_session)
    _fail_without_card(account, attempt)
    return attempt


def _charges_record(charges: list[tuple[Account, Invoice, str]]) -> None:
    """The first charges of invoices a batch has just issued, (account, invoice, description) each: pending,
    on each account's default card, in one insert. The charge step sends them."""
    cards = default_cards([account.pk for account, _, _ in charges])
    attempts = attempts_begin_first(attempts=[
        dict(account=account, card=cards.get(account.pk), purpose=PaymentAttempt.RENEWAL, kind=PaymentAttempt.CHARGE,
             amount=invoice.total, key_base=f"invoice:{invoice.pk}", description=description, invoice=invoice,
             off_session=True)
        for account, invoice, description in charges])
    for (account, _, _), attempt in zip(charges, attempts, strict=True):
        _fail_without_card(account, attempt)


def _fail_without_card(account: Account, attempt: PaymentAttempt) -> None:
    # No usable default card: the charge fails at once, nothing sent, and dunning goes on from there.
    card = attempt.card
    if card is None or card.is_expired(clock.today(account)):
        reason = "There is no default card to charge." if card is None else "The default card has expired."
        PaymentAttempt.objects.filter(pk=attempt.pk).update(status=PaymentAttempt.FAILED, failure_reason=reason)
        transaction.on_commit(lambda: renewal_charge_outcome(PaymentAttempt.objects.get(pk=attempt.pk)))


# --- 2. the charge step -----------------------------------------------------------------------------

def _claim(limit: int | None, *, accounts: list[Account] | None = None) -> list[PaymentAttempt]:
    """Take up to `limit` unsent renewal charges (or ones a dead worker left), of these accounts or of
    all, marking them sent; each comes with its card, so sending it reads nothing more from the database."""
    now = clock.now()
    with transaction.atomic():
        waiting = PaymentAttempt.objects.filter(
            purpose=PaymentAttempt.RENEWAL, kind=PaymentAttempt.CHARGE, status=PaymentAttempt.PENDING,
            off_session=True).filter(Q(sent_at__isnull=True) | Q(sent_at__lt=now - CLAIM_TIMEOUT))
        if accounts is not None:
            waiting = waiting.filter(account_id__in=[account.pk for account in accounts])
        if connection.features.has_select_for_update_skip_locked:
            waiting = waiting.select_for_update(skip_locked=True, of=("self",))
        claimed = list(waiting.select_related("card").order_by("pk")[:limit])
        PaymentAttempt.objects.filter(pk__in=[attempt.pk for attempt in claimed]).update(sent_at=now)
    return claimed


def renewal_charges_send(*, concurrency: int | None = None, account: Account | None = None,
                         batch: int | None = None) -> "RunSummary":
    """The charge step: send every pending renewal charge (of one account, or of all) to the processor,
    `concurrency` at a time, outside every transaction, a claimed batch at a time, each batch's answers
    settled before the next is claimed; the outcomes and the sum charged."""
    with ChargeSender(concurrency) as sender:
        # A few rounds of the pool at a time: a worker that dies leaves few charges claimed, unsent, and
        # each batch's answers are recorded soon after the processor gave them.
        batch = batch or max(4 * sender.concurrency, 25)
        while claimed := _claim(batch, accounts=None if account is None else [account]):
            sender.send(claimed)
            sender.settle(wait=True)
    return sender.summary


class ChargeSender:
    """Renewal charges on their way to the processor: sent from a pool of `concurrency` threads (each
    waits on the processor, and none touches the database) while the caller goes on with its work;
    their answers recorded and settled in the caller's thread, on its one connection, when it calls
    `settle`, and all of them as the block ends. With a concurrency of 1, sent at once, in this thread."""

    def __init__(self, concurrency: int | None = None):
        self.concurrency = concurrency or settings.BILLING_CHARGE_CONCURRENCY
        self.pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="charge")
        self.in_flight: set[Future] = set()
        self.answered: list[tuple[PaymentAttempt, PaymentOutcome | Exception]] = []
        self.summary = RunSummary()

    def __enter__(self) -> "ChargeSender":
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.settle(wait=True)  # whatever the processor answered is recorded, even after an error here
        finally:
            self.pool.shutdown()

    def send(self, attempts: list[PaymentAttempt]) -> None:
        for attempt in attempts:
            if self.concurrency == 1:
                self.answered.append(_answer(attempt))
            else:
                self.in_flight.add(self.pool.submit(_answer, attempt))

    def settle(self, *, wait: bool = False, at_least: int = 1) -> None:
        """Record and settle the answers back so far, if there are `at_least` (with `wait`, once every
        charge sent has its answer): a few larger batches cost far fewer queries than many small ones."""
        done, in_flight = futures_wait(self.in_flight, timeout=None if wait else 0)
        if not wait and len(done) + len(self.answered) < at_least:
            return
        self.in_flight = in_flight
        answers, self.answered = self.answered + [future.result() for future in done], []
        for attempt in _settle(sorted(answers, key=lambda answer: answer[0].pk)) if answers else ():
            self.summary.outcomes[attempt.status if attempt else "error"] += 1
            if attempt and attempt.status == PaymentAttempt.SUCCEEDED:
                self.summary.charged += attempt.amount


def _answer(attempt: PaymentAttempt) -> tuple[PaymentAttempt, PaymentOutcome | Exception]:
    """The processor's answer to one claimed charge: an outcome, ProcessorUnavailable, or the error it
    raised (logged; the charge is left to reconciliation)."""
    try:
        return attempt, attempt_call(attempt)
    except ProcessorUnavailable as error:
        return attempt, error
    except Exception as error:  # one charge's failure never stops the others; reconciliation has it
        log.exception("renewal charge %s could not be sent", attempt.pk)
        return attempt, error


def _settle(answers: list[tuple[PaymentAttempt, PaymentOutcome | Exception]]) -> list[PaymentAttempt | None]:
    """Record a batch's answers and settle their renewals, a transaction for each step; should that fail,
    one answer at a time (each step is idempotent), so one bad answer never stops the others."""
    answered = [(attempt, answer) for attempt, answer in answers
                if isinstance(answer, PaymentOutcome | ProcessorUnavailable)]
    try:
        recorded = attempts_record(answered)
        renewal_charges_outcome(recorded)
    except Exception:
        log.exception("a batch of %s renewal charges could not be settled together; settling one by one",
                      len(answered))
        recorded = [_settle_one(attempt, answer) for attempt, answer in answered]
    by_pk = {attempt.pk: attempt for attempt in recorded if attempt is not None}
    return [by_pk.get(attempt.pk) for attempt, _ in answers]


def _settle_one(attempt: PaymentAttempt, answer: PaymentOutcome | ProcessorUnavailable) -> PaymentAttempt | None:
    try:
        (recorded,) = attempts_record([(attempt, answer)])
        renewal_charge_outcome(recorded)
        return recorded
    except Exception:  # reconciliation has it
        log.exception("renewal charge %s could not be settled", attempt.pk)
        return None


def renewal_charge_outcome(attempt: PaymentAttempt) -> None:
    """Settle a renewal charge's answer: paid, or past due with the next retry, or failed for good.

    Idempotent per attempt (an answer recorded once moves the renewal once). Attempts still in
    flight are not answers: pending and unknown ones are the charge step's and reconciliation's, and
    one waiting for the owner to authenticate (Pay now) is settled when they confirm it.
    """
    renewal_charges_outcome([attempt])


def renewal_charges_outcome(attempts: list[PaymentAttempt]) -> None:
    """`renewal_charge_outcome` for many answers (a charge step's batch), in one transaction: their
    accounts locked in id order, the renewals paid together, each failure through dunning."""
    answered = [attempt for attempt in attempts if attempt.status not in PaymentAttempt.IN_FLIGHT]
    if not answered:
        return
    with transaction.atomic():
        accounts = {account.pk: account for account in Account.objects.select_for_update()
                    .filter(pk__in={attempt.account_id for attempt in answered}).order_by("pk")}
        renewals = {renewal.invoice_id: renewal for renewal in Renewal.objects.select_for_update(of=("self",))
                    .select_related("invoice").filter(invoice_id__in=[attempt.invoice_id for attempt in answered])}
        paid = []
        for attempt in PaymentAttempt.objects.filter(pk__in=[attempt.pk for attempt in answered]).order_by("pk"):
            account, renewal = accounts[attempt.account_id], renewals[attempt.invoice_id]
            if renewal.settled_attempt_id is not None and attempt.pk <= renewal.settled_attempt_id:
                continue  # this answer (or a later one) has moved it already
            renewal.settled_attempt_id = attempt.pk
            if attempt.status == PaymentAttempt.SUCCEEDED:
                paid.append((account, renewal))
                continue
            renewal.save(update_fields=["settled_attempt_id"])
            if renewal.status in (Renewal.ISSUED, Renewal.PAST_DUE):
                _renewal_charge_failed(account, renewal, attempt)
        _renewals_paid(paid)


def _renewals_paid(paid: list[tuple[Account, Renewal]]) -> None:
    """These renewals are paid (inside the caller's locked transaction): their licenses past due are
    active again at once, and each account gets its receipt."""
    if not paid:
        return
    for _, renewal in paid:
        renewal.status, renewal.next_retry_on = Renewal.PAID, None
    rows_update(Renewal, [renewal for _, renewal in paid], ["status", "next_retry_on", "settled_attempt_id"])
    License.objects.filter(terms__invoice_id__in=[renewal.invoice_id for _, renewal in paid],
                           status=License.PAST_DUE).update(status=License.ACTIVE)
    _receipts([(account, renewal.invoice) for account, renewal in paid])


def past_due_pay_from_credit(account: Account, *, user=None) -> list[Renewal]:
    """Credit granted while a renewal is past due pays it first (docs/rules.md, dunning): each one the
    credit balance covers in full, oldest first, with no payment under way, is paid from credit — an
    APPLIED ledger entry against its invoice, the invoice paid ("Paid from credit"), its licenses active
    again. Inside the caller's transaction, with the account locked; the renewals paid."""
    paid = []
    balance = credit_balance(account)
    for renewal in (Renewal.objects.select_for_update(of=("self",)).select_related("invoice")
                    .filter(account=account, status=Renewal.PAST_DUE).order_by("billing_date")):
        invoice = renewal.invoice
        if invoice.status != Invoice.OPEN or invoice.total > balance or PaymentAttempt.objects.filter(
                invoice=invoice, status__in=PaymentAttempt.IN_FLIGHT).exists():
            continue
        CreditEntry.objects.create(account=account, kind=CreditEntry.APPLIED, amount=-invoice.total, invoice=invoice,
                                   note=f"Paid {invoice.number} from credit", created_by=user,
                                   created_at=clock.now(account))
        invoice_status_set(invoice=invoice, to_status=Invoice.PAID, reason="Paid from credit", user=user)
        _renewals_paid([(account, renewal)])
        balance -= invoice.total
        paid.append(renewal)
    return paid


def _renewal_charge_failed(account: Account, renewal: Renewal, attempt: PaymentAttempt) -> None:
    today = clock.today(account)
    reason = attempt.failure_reason or "Your card was declined."
    if not attempt.off_session:
        # Pay now refused: the owner saw it; the retry schedule goes on unchanged.
        return
    renewal.failed_attempts += 1
    renewal.first_failed_on = renewal.first_failed_on or today
    invoice = renewal.invoice
    if renewal.failed_attempts > len(RETRY_AFTER_DAYS):
        renewal_fail(account, renewal)
        return
    renewal.status = Renewal.PAST_DUE
    wait = datetime.timedelta(days=RETRY_AFTER_DAYS[renewal.failed_attempts - 1])
    renewal.next_retry_on = renewal.first_failed_on + wait
    renewal.save(update_fields=["status", "failed_attempts", "first_failed_on", "next_retry_on"])
    License.objects.filter(account=account, terms__invoice=invoice).active().update(status=License.PAST_DUE)
    pay = reverse("billing:renewal_pay", args=[renewal.pk])
    retry = f"{renewal.next_retry_on:%b} {renewal.next_retry_on.day}"
    authenticate = attempt.processor_answer.get("decline_code") == "authentication_required"
    email_account(account, "Confirm your payment" if authenticate else "Your Pictor payment failed",
                  f"We could not charge {format_usd(invoice.total)} for invoice {invoice.number}: {reason}\n"
                  f"{'Your bank asks you to confirm it. ' if authenticate else ''}"
                  f"Pay now from the Billing area ({pay}); otherwise we try again on {retry}.")
    if renewal.failed_attempts == len(RETRY_AFTER_DAYS):
        email_account(account, "Last notice: your Pictor licenses will end",
                      f"This is the last try: on {retry} we charge {format_usd(invoice.total)} for invoice "
                      f"{invoice.number} once more. If it fails, the licenses it renews end. Pay now: {pay}")


def renewal_fail(account: Account, renewal: Renewal) -> None:
    """After the last failure: the invoice fails, a credit note cancels it, its credit returns and its
    licenses expire, paid until the billing date (inside the caller's locked transaction)."""
    invoice = renewal.invoice
    invoice_cancel(account, invoice, to_status=Invoice.FAILED, reason="The last retry failed",
                   note_reason="Renewal not paid: cancelled")
    renewal_end(account, renewal)
    email_account(account, "Your Pictor licenses have ended",
                  f"The renewal on {pricing.day_words(renewal.billing_date)} could not be charged, so invoice "
                  f"{invoice.number} is "
                  "cancelled and the licenses it renewed have ended. Buy licenses again from the Billing area.")


def invoice_cancel(account: Account, invoice: Invoice, *, to_status: str, reason: str, note_reason: str,
                   user=None) -> Invoice | None:
    """An open invoice that will never be paid (failed, or voided by support): its status moves, a credit
    note cancels its total, and the credit it used returns to the balance. The credit note, if any."""
    invoice_status_set(invoice=invoice, to_status=to_status, reason=reason, user=user)
    what = "renewal" if invoice.kind == Invoice.RENEWAL else "invoice"
    note = None
    if invoice.total:
        note = credit_note_issue(invoice=invoice, lines=[QuoteLine("credit", f"Cancels unpaid {what} {invoice.number}",
                                                                   1, -invoice.total, -invoice.total)],
                                 description=f"Credit note for unpaid {what} {invoice.number}", reason=note_reason,
                                 user=user)
    if invoice.credit_applied:
        CreditEntry.objects.create(account=account, kind=CreditEntry.RETURNED, amount=invoice.credit_applied,
                                   invoice=invoice, note=f"Credit returned: the {what} was not paid",
                                   created_at=clock.now(account), created_by=user)
    return note


def renewal_end(account: Account, renewal: Renewal) -> None:
    """A renewal whose invoice will never be paid: what it renewed expires, paid until its billing date."""
    renewed = License.objects.filter(terms__invoice=renewal.invoice).active()
    LicenseTerm.objects.filter(invoice=renewal.invoice).update(paid=ZERO)
    licenses_expire(account, list(renewed), paid_until=renewal.billing_date)
    renewal.status, renewal.next_retry_on = Renewal.FAILED, None
    renewal.save(update_fields=["status", "next_retry_on", "failed_attempts", "first_failed_on"])


def _receipts(paid: list[tuple[Account, Invoice]]) -> None:
    """A receipt to each account for its invoice paid (once the caller's transaction commits)."""
    email_accounts([(account, f"Receipt for invoice {invoice.number}",
                     f"{invoice.description}: {format_usd(invoice.total)} paid. Thank you. The invoice is on the "
                     "Invoices tab of the Billing area.") for account, invoice in paid])


# --- 3. retries and Pay now ---------------------------------------------------------------------------

def retries_prepare(account: Account, upto: datetime.date) -> int:
    """Record the retries due on or before `upto` (pending charges the charge step sends); how many."""
    made = 0
    for renewal in Renewal.objects.filter(account=account, status=Renewal.PAST_DUE, next_retry_on__lte=upto):
        try:
            with transaction.atomic():
                account = account_lock(account)
                renewal = Renewal.objects.select_for_update(of=("self",)).select_related("invoice").get(pk=renewal.pk)
                if renewal.status != Renewal.PAST_DUE or renewal.next_retry_on is None \
                        or renewal.next_retry_on > upto or renewal.invoice.status != Invoice.OPEN:
                    continue
                renewal.next_retry_on = None  # taken: the outcome sets the next one
                renewal.save(update_fields=["next_retry_on"])
                _charge_record(account, renewal.invoice, renewal,
                               description=f"Renewal of {pricing.day_words(renewal.billing_date)} (retry)")
                made += 1
        except IntegrityError:
            pass  # an attempt for this invoice is already in flight (Pay now): it decides
    return made


def renewal_pay_now(*, account: Account, renewal: Renewal) -> PaymentAttempt:
    """The owner pays a past-due renewal now with the default card (on-session).

    At most one attempt per invoice is in flight (the database refuses a second); the attempt is
    returned once the processor has answered. Raises NothingToPay when the invoice is not open.
    """
    with transaction.atomic():
        account = account_lock(account)
        renewal = (Renewal.objects.select_for_update(of=("self",)).select_related("invoice")
                   .get(pk=renewal.pk, account=account))
        if renewal.invoice is None or renewal.invoice.status != Invoice.OPEN:
            raise NothingToPay(renewal.pk)
        attempt = _charge_record(account, renewal.invoice, renewal, off_session=False,
                                 description=f"Renewal of {pricing.day_words(renewal.billing_date)} (paid now)")
    attempt = PaymentAttempt.objects.get(pk=attempt.pk)
    if attempt.status == PaymentAttempt.PENDING:
        attempt = attempt_send(attempt)
    renewal_charge_outcome(attempt)
    return attempt


def next_renewal(account: Account, *, credit: Decimal | None = None) -> pricing.RenewalQuote | None:
    """The account's next renewal as the run will charge it: the earliest billing date of a license
    that is not cancelled, priced now by `quote_renewal` (None when nothing will renew).

    `credit`: the account's credit balance, when the caller has read it already. The same figures as
    `renewal_quote` on that date (tests compare them), in one query whatever the account's size (the
    Licenses tab shows it on every page): the due licenses counted by shape, no license loaded.
    """
    with connection.cursor() as cursor:
        cursor.execute(_NEXT_RENEWAL_SQL, [account.pk, License.EXPIRED, False])
        due = cursor.fetchall()
    if not due:
        return None
    upcoming, version, renewing_count = _as_date(due[0][0]), due[0][1], int(due[0][2])  # PostgreSQL's SUM: numeric
    # Each shape (what it renews as, its group's anchor) priced by _renewing once, quoted as one entry.
    renewing_now = []
    for *shape, anchor_on, first, count in (row[3:] for row in due):
        priced = _renewing(_license_shaped(*shape, _as_date(anchor_on)), upcoming, account.monthly_anchor_day)
        renewing_now.append(replace(priced, id=first, count=count))
    return pricing.quote_renewal(
        billing_date=upcoming, prices=catalogue.prices_on(upcoming, version=version),
        others_active=renewing_count - sum(entry.count for entry in renewing_now),
        credit_balance=credit_balance(account) if credit is None else credit, renewing=renewing_now,
    )


# next_renewal's query, plain SQL that PostgreSQL and SQLite both run (built by the ORM, its three
# queries cost ~5 ms of CPU on every Licenses page, the database well under one). "Renewing" as
# LicenseQuerySet.renewing states it: not expired, not cancelled. Every row carries the billing date,
# the price list's version (licenses.catalogue) and how many licenses renew at all (the bracket's rest).
# One pass: the licenses grouped by billing date and shape, the window over the groups giving the
# earliest date and the count (a CTE read three times, sorted on its text columns, took twice as long).
_LICENSE, _GROUP = License._meta.db_table, RenewalGroup._meta.db_table
_NEXT_RENEWAL_SQL = f"""
    SELECT period_end, (SELECT token FROM {PriceListVersion._meta.db_table} WHERE id = 1), renewing,
           tier, period, next_tier, next_period, anchor_on, first, due
    FROM (SELECT lic.period_end, lic.tier, lic.period, lic.next_tier, lic.next_period, grp.anchor_on,
                 MIN(lic.id) AS first, COUNT(*) AS due,
                 SUM(COUNT(*)) OVER () AS renewing, MIN(lic.period_end) OVER () AS upcoming
          FROM {_LICENSE} lic JOIN {_GROUP} grp ON grp.id = lic.group_id
          WHERE lic.account_id = %s AND lic.status <> %s AND lic.cancel_at_period_end = %s
          GROUP BY lic.period_end, lic.tier, lic.period, lic.next_tier, lic.next_period, grp.anchor_on) shapes
    WHERE period_end = upcoming
    ORDER BY first
"""


def _as_date(value) -> datetime.date:
    """A date column read by a plain query: PostgreSQL sends a date, SQLite its ISO text."""
    return value if isinstance(value, datetime.date) else datetime.date.fromisoformat(value)


def _license_shaped(tier: str, period: str, next_tier: str, next_period: str, anchor_on: datetime.date) -> License:
    """An unsaved license carrying only what _renewing reads."""
    return License(tier=tier, period=period, next_tier=next_tier, next_period=next_period,
                   group=RenewalGroup(anchor_on=anchor_on))


def open_renewals(account: Account):
    """The account's renewals waiting for payment (past due), oldest first."""
    return Renewal.objects.filter(account=account, status__in=[Renewal.PAST_DUE, Renewal.ISSUED],
                                  invoice__status=Invoice.OPEN).select_related("invoice").order_by("billing_date")


# --- the run for one account ---------------------------------------------------------------------------

@dataclass
class RunSummary:
    """What a billing run (or a test clock's advance) did."""

    accounts: int = 0
    renewed: int = 0
    expired: int = 0
    retries: int = 0
    outcomes: Counter = field(default_factory=Counter)
    charged: Decimal = ZERO

    def add(self, other: "RunSummary") -> None:
        self.accounts += other.accounts
        self.renewed += other.renewed
        self.expired += other.expired
        self.retries += other.retries
        self.outcomes.update(other.outcomes)
        self.charged += other.charged


# A renewal task prepares its accounts this many at a time, in a transaction each, and sends each
# group's charges while it prepares the next: the processor's latency overlaps the database work.
CHARGED_AHEAD = 50


def accounts_renew(accounts: list[Account], upto: datetime.date, *, concurrency: int | None = None) -> RunSummary:
    """A batch's whole run (a renewal task's): its accounts prepared CHARGED_AHEAD at a time
    (`accounts_prepare`), each group's charges sent to the processor (`ChargeSender`) while the next
    group is prepared, and every answer settled before it returns."""
    summary = RunSummary()
    with ChargeSender(concurrency) as sender:
        for start in range(0, len(accounts), CHARGED_AHEAD):
            group = accounts[start:start + CHARGED_AHEAD]
            summary.add(accounts_prepare(group, upto))
            sender.send(_claim(None, accounts=group))
            sender.settle(at_least=CHARGED_AHEAD)
    summary.add(sender.summary)
    return summary


def account_prepare(account: Account, upto: datetime.date) -> RunSummary:
    """The database work for one account (`accounts_prepare` for a batch of one)."""
    return accounts_prepare([account], upto)


def accounts_prepare(accounts: list[Account], upto: datetime.date) -> RunSummary:
    """The database work for a batch of accounts: each one's missed billing dates up to `upto`, oldest
    first, a transaction for the batch's dates of each round, then their retries due. No processor call."""
    summary = RunSummary(accounts=len(accounts))
    by_id = {account.pk: account for account in accounts}
    expired_before = License.objects.filter(account_id__in=by_id, status=License.EXPIRED).count()
    done: dict[int, set[datetime.date]] = {pk: set() for pk in by_id}
    # Oldest first, again after each round: a date renewed may bring the next one within reach
    # (a run that missed a month bills both months).
    while due := _oldest_due(by_id, upto, done):
        for account, billing_date in due:
            done[account.pk].add(billing_date)
        summary.renewed += renewals_prepare(due)
    retrying = Renewal.objects.filter(account_id__in=by_id, status=Renewal.PAST_DUE, next_retry_on__lte=upto)
    for account_id in sorted(set(retrying.values_list("account_id", flat=True))):
        summary.retries += retries_prepare(by_id[account_id], upto)
    summary.expired = License.objects.filter(account_id__in=by_id, status=License.EXPIRED).count() - expired_before
    return summary


def _oldest_due(accounts: dict[int, Account], upto: datetime.date,
                done: dict[int, set[datetime.date]]) -> list[tuple[Account, datetime.date]]:
    """Each account's oldest billing date on or before `upto` not done yet (`due_dates`, for a batch)."""
    oldest: dict[int, datetime.date] = {}
    for account_id, billing_date in (License.objects.filter(account_id__in=accounts, period_end__lte=upto).active()
                                     .order_by().values_list("account_id", "period_end").distinct()):
        if billing_date not in done[account_id] and billing_date < oldest.get(account_id, datetime.date.max):
            oldest[account_id] = billing_date
    return [(accounts[account_id], oldest[account_id]) for account_id in sorted(oldest)]
