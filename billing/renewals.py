"""Renewals and dunning: what the billing run does for one account and one billing date.

1. `renewal_prepare` (database work only, account locked): the licenses due on the date that are
   cancelled expire; the others renew in one invoice (issued open, numbered in the year it is
   issued, priced as of the billing date, service period printed), the credit balance first; a
   pending charge attempt is recorded. One `Renewal` per account and date (a unique constraint):
   re-running, two workers, or a worker killed half-way bill nothing twice.
2. The charge step (`renewal_charges_send`) sends pending renewal charges to the processor from a
   thread pool, outside every transaction, and `renewal_charge_outcome` settles each.
3. Dunning: a failed charge leaves the licenses active and past due; it is retried on F+1, F+3 and
   F+5 (F the day of the first attempt; one attempt per invoice in flight, by a constraint). After
   the last failure the invoice fails, a credit note cancels it, the credit it used returns, and its
   licenses expire, paid until the billing date, their live events ended.
"""

import datetime
import logging
import queue
import threading
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.urls import reverse

from accounts.models import Account
from accounts.services import account_lock, account_lock_by_id, email_account
from billing.models import Renewal
from invoices.models import Invoice
from invoices.services import credit_note_issue, invoice_status_set, issuing_invoice
from licenses.models import EventLease, License, LicenseTerm, RenewalGroup
from licenses.services import monthly_group, prices_in_force
from payments.models import CreditEntry, PaymentAttempt
from payments.services import attempt_begin, attempt_send, credit_balance, default_card
from pictor_billing import clock, pricing
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
    # Every other license not cancelled is active on that date, whatever its own billing date: one due
    # earlier renews first (the run bills dates oldest first), so a reminder quoted ahead counts it too.
    others = License.objects.filter(account=account).renewing().exclude(pk__in=[lic.pk for lic in due]).count()
    return pricing.quote_renewal(
        billing_date=billing_date, prices=prices_in_force(billing_date), others_active=others,
        renewing=[_renewing(lic, billing_date, account.monthly_anchor_day) for lic in renewing],
        credit_balance=credit_balance(account),
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


def renewal_prepare(account: Account, billing_date: datetime.date) -> Renewal | None:
    """Renew (or expire) the account's licenses due on `billing_date`: the invoice and a pending charge.

    Idempotent: a date already renewed returns its Renewal. None when nothing is due that day.
    """
    try:
        with transaction.atomic():
            account = account_lock(account)
            done = Renewal.objects.filter(account=account, billing_date=billing_date).first()
            if done is not None:
                return done
            due = list(License.objects.select_for_update(of=("self",)).select_related("group")
                       .filter(account=account, period_end=billing_date).active())
            if not due:
                return None
            licenses_expire(account, [lic for lic in due if lic.cancel_at_period_end], paid_until=billing_date)
            renewing = [lic for lic in due if not lic.cancel_at_period_end]
            if not renewing:
                return Renewal.objects.create(account=account, billing_date=billing_date, status=Renewal.NOTHING,
                                              created_at=clock.now(account))
            return _renew(account, billing_date, renewing)
    except IntegrityError:
        # Another worker recorded this date in the same instant (the constraint held): it is done.
        return Renewal.objects.get(account=account, billing_date=billing_date)


def _renew(account: Account, billing_date: datetime.date, renewing: list[License]) -> Renewal:
    now = clock.now(account)
    quote = renewal_quote(account, billing_date, renewing)
    by_id = {lic.id: lic for lic in quote.licenses}
    paid = not quote.total_due
    plural = "s" if quote.quantity > 1 else ""
    with issuing_invoice(
        account=account, kind=Invoice.RENEWAL, lines=quote.lines,
        description=f"Renewal of {quote.quantity} license{plural} on {billing_date:%b} {billing_date.day}, "
                    f"{billing_date.year}",
        subtotal=quote.subtotal, discount_total=quote.volume_discount, credit_applied=quote.credit_applied,
        total=quote.total_due, status=Invoice.PAID if paid else Invoice.OPEN, issued_on=now.date(),
        status_reason="Issued; paid by credit" if paid else "Issued; the default card is charged next",
        service_from=billing_date, service_to=quote.service_to,
    ) as invoice:
        if quote.credit_applied:
            CreditEntry.objects.create(account=account, kind=CreditEntry.APPLIED, amount=-quote.credit_applied,
                                       invoice=invoice, note="Applied to a renewal", created_at=now)
        renewal = Renewal.objects.create(account=account, billing_date=billing_date, invoice=invoice,
                                         status=Renewal.PAID if paid else Renewal.ISSUED, created_at=now)
        switched = _changes_apply(account, billing_date, renewing)
        for lic in renewing:
            renewed = by_id[lic.pk]
            lic.period_start, lic.period_end = switched.get(lic.pk, billing_date), renewed.renews_to
            lic.list_price, lic.discount_rate = renewed.list_price, renewed.rate
        License.objects.bulk_update(renewing, ["period_start", "period_end", "list_price", "discount_rate", "tier",
                                               "period", "next_tier", "next_period", "group"])
        if switched:
            groups_close(account, today=billing_date)
        LicenseTerm.objects.bulk_create(
            LicenseTerm(license_id=renewed.id, kind=LicenseTerm.RENEWAL, starts_on=billing_date,
                        ends_on=renewed.renews_to, tier=renewed.tier, period=renewed.period,
                        list_price=renewed.list_price, rate=renewed.rate, paid=renewed.paid, invoice=invoice,
                        created_at=now)
            for renewed in quote.licenses)
        if not paid:
            _charge_record(account, invoice, renewal, description=f"Renewal {billing_date:%Y-%m-%d}")
    if paid:
        _receipt(account, invoice)
    return renewal


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
    # A pending charge of the open invoice on the default card (none usable: it fails at once,
    # and dunning goes on from there). The charge step sends it.
    card = default_card(account)
    attempt = attempt_begin(account=account, card=card, purpose=PaymentAttempt.RENEWAL, kind=PaymentAttempt.CHARGE,
                            amount=invoice.total, key_base=f"invoice:{invoice.pk}", description=description,
                            invoice=invoice, off_session=off_session)
    if card is None or card.is_expired(clock.today(account)):
        reason = "There is no default card to charge." if card is None else "The default card has expired."
        PaymentAttempt.objects.filter(pk=attempt.pk).update(status=PaymentAttempt.FAILED, failure_reason=reason)
        transaction.on_commit(lambda: renewal_charge_outcome(PaymentAttempt.objects.get(pk=attempt.pk)))
    return attempt


# --- 2. the charge step -----------------------------------------------------------------------------

def _claim(limit: int, *, account: Account | None = None) -> list[PaymentAttempt]:
    """Take up to `limit` unsent renewal charges (or ones a dead worker left), marking them sent."""
    now = clock.now()
    with transaction.atomic():
        waiting = PaymentAttempt.objects.filter(
            purpose=PaymentAttempt.RENEWAL, kind=PaymentAttempt.CHARGE, status=PaymentAttempt.PENDING,
            off_session=True).filter(Q(sent_at__isnull=True) | Q(sent_at__lt=now - CLAIM_TIMEOUT))
        if account is not None:
            waiting = waiting.filter(account=account)
        if connection.features.has_select_for_update_skip_locked:
            waiting = waiting.select_for_update(skip_locked=True)
        claimed = list(waiting.order_by("pk")[:limit])
        PaymentAttempt.objects.filter(pk__in=[attempt.pk for attempt in claimed]).update(sent_at=now)
    return claimed


def _send_all(attempts: list[PaymentAttempt], concurrency: int) -> list[PaymentAttempt | None]:
    """Send these charges from `concurrency` threads, each on its own connection, closed at its end."""
    work: queue.SimpleQueue = queue.SimpleQueue()
    for attempt in attempts:
        work.put(attempt)
    results: list[PaymentAttempt | None] = []

    def sender():
        try:
            while True:
                try:
                    attempt = work.get_nowait()
                except queue.Empty:
                    return
                results.append(_send_one(attempt))
        finally:
            connection.close()

    threads = [threading.Thread(target=sender, name=f"charge-{n}") for n in range(min(concurrency, len(attempts)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _send_one(attempt: PaymentAttempt) -> PaymentAttempt | None:
    try:
        return attempt_send_and_settle(attempt)
    except Exception:  # one charge's failure never stops the others; reconciliation has it
        log.exception("renewal charge %s could not be settled", attempt.pk)
        return None


def renewal_charges_send(*, concurrency: int | None = None, account: Account | None = None,
                         batch: int = 500) -> "RunSummary":
    """Send every pending renewal charge to the processor, `concurrency` at a time (outside every
    transaction: threads, since each call waits on the processor); the outcomes and the sum charged."""
    concurrency = concurrency or settings.BILLING_CHARGE_CONCURRENCY
    summary = RunSummary()
    while claimed := _claim(batch, account=account):
        sent = [_send_one(attempt) for attempt in claimed] if concurrency == 1 else _send_all(claimed, concurrency)
        for attempt in sent:
            summary.outcomes[attempt.status if attempt else "error"] += 1
            if attempt and attempt.status == PaymentAttempt.SUCCEEDED:
                summary.charged += attempt.amount
    return summary


def attempt_send_and_settle(attempt: PaymentAttempt) -> PaymentAttempt:
    """Send one renewal charge and settle what the processor said (in the caller's thread)."""
    attempt = attempt_send(attempt)
    renewal_charge_outcome(attempt)
    return attempt


def renewal_charge_outcome(attempt: PaymentAttempt) -> Renewal | None:
    """Settle a renewal charge's answer: paid, or past due with the next retry, or failed for good.

    Idempotent per attempt (an answer recorded once moves the renewal once). Attempts still in
    flight are not answers: pending and unknown ones are the charge step's and reconciliation's, and
    one waiting for the owner to authenticate (Pay now) is settled when they confirm it.
    """
    if attempt.status in PaymentAttempt.IN_FLIGHT:
        return None
    with transaction.atomic():
        account = account_lock_by_id(attempt.account_id)
        renewal = (Renewal.objects.select_for_update(of=("self",)).select_related("invoice")
                   .get(invoice_id=attempt.invoice_id))
        attempt = PaymentAttempt.objects.get(pk=attempt.pk)
        if renewal.settled_attempt_id is not None and attempt.pk <= renewal.settled_attempt_id:
            return renewal  # this answer (or a later one) has moved it already
        renewal.settled_attempt_id = attempt.pk
        renewal.save(update_fields=["settled_attempt_id"])
        if attempt.status == PaymentAttempt.SUCCEEDED:
            _renewal_paid(account, renewal)
        elif renewal.status in (Renewal.ISSUED, Renewal.PAST_DUE):
            _renewal_charge_failed(account, renewal, attempt)
        return renewal


def _renewal_paid(account: Account, renewal: Renewal) -> None:
    renewal.status, renewal.next_retry_on = Renewal.PAID, None
    renewal.save(update_fields=["status", "next_retry_on"])
    License.objects.filter(terms__invoice=renewal.invoice, status=License.PAST_DUE).update(status=License.ACTIVE)
    _receipt(account, renewal.invoice)


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
        _renewal_paid(account, renewal)
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
                  f"The renewal on {renewal.billing_date} could not be charged, so invoice {invoice.number} is "
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


def _receipt(account: Account, invoice: Invoice) -> None:
    email_account(account, f"Receipt for invoice {invoice.number}",
                  f"{invoice.description}: {format_usd(invoice.total)} paid. Thank you. The invoice is on the "
                  "Invoices tab of the Billing area.")


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
                               description=f"Renewal {renewal.billing_date:%Y-%m-%d}, retry")
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
                                 description=f"Renewal {renewal.billing_date:%Y-%m-%d}, paid now")
    attempt = PaymentAttempt.objects.get(pk=attempt.pk)
    if attempt.status == PaymentAttempt.PENDING:
        attempt = attempt_send(attempt)
    renewal_charge_outcome(attempt)
    return attempt


def next_renewal(account: Account) -> pricing.RenewalQuote | None:
    """The account's next renewal as the run will charge it: the earliest billing date of a license
    that is not cancelled, priced now by `quote_renewal` (None when nothing will renew)."""
    upcoming = License.objects.filter(account=account).renewing().order_by("period_end").values_list(
        "period_end", flat=True).first()
    return renewal_quote(account, upcoming) if upcoming else None


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


def account_prepare(account: Account, upto: datetime.date) -> RunSummary:
    """The database work for one account: every missed billing date up to `upto`, oldest first, then
    its retries due. No processor call."""
    summary = RunSummary(accounts=1)
    started = clock.now(account)
    expired_before = License.objects.filter(account=account, status=License.EXPIRED).count()
    done: set[datetime.date] = set()
    # Oldest first, again after each date: a date renewed may bring the next one within reach
    # (a run that missed a month bills both months).
    while billing_date := next((d for d in due_dates(account, upto) if d not in done), None):
        done.add(billing_date)
        renewal = renewal_prepare(account, billing_date)
        if renewal is not None and renewal.invoice_id and renewal.created_at >= started:
            summary.renewed += 1
    summary.retries = retries_prepare(account, upto)
    summary.expired = License.objects.filter(account=account, status=License.EXPIRED).count() - expired_before
    return summary
