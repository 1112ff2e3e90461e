"""The Billing header on every page: token balance (flagged when low), Top Up, and the banners
(past due, no card, auto top-up switched off by a decline, a payment to confirm or being confirmed,
an email to verify)."""

from decimal import Decimal

from accounts.models import Account
from billing.cards import default_card_with
from billing.models import Renewal
from billing.renewals import next_renewal, open_renewals
from invoices.models import Invoice
from payments.models import Card, CreditEntry, PaymentAttempt
from pictor_billing import clock
from pictor_billing.money import ZERO, db_money
from tokens.models import TokenEntry, TokenSettings


def billing_header(request):
    """Figures for the top-right balance and the banners; nothing for anonymous users or staff without an account."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or user.account_id is None:
        return {}
    return {"billing": BillingHeader(user.account, user)}


def header_figures(account: Account, *, signup_grant: bool) -> dict:
    """Everything the header shows, in one query whatever the account's size: the token balance, the
    low-balance alert and auto top-up failure, the credit balance, the default card, and the ids of a
    past-due renewal and of payments to confirm or being confirmed (None when there is none).

    `signup_grant`: also ask whether the welcome tokens were granted (only an unverified user's header
    asks, so no other header looks through the ledger for it).
    """
    tables = {name: model._meta.db_table for name, model in (
        ("entry", TokenEntry), ("prefs", TokenSettings), ("credit", CreditEntry), ("renewal", Renewal),
        ("invoice", Invoice), ("attempt", PaymentAttempt))}
    pk = account.pk
    # Each rule as its own app states it: tokens.services.token_balance (the newest entry's running
    # balance), payments.services.credit_balance (the ledger's sum), billing.renewals.open_renewals (past
    # due, its invoice open, oldest first), the header's two payment banners (newest first, as
    # PaymentAttempt.Meta.ordering).
    attempt = f"SELECT id FROM {tables['attempt']} WHERE account_id = %s AND status = %s"
    figures = {
        "tokens": (f"SELECT balance_after FROM {tables['entry']} WHERE account_id = %s ORDER BY id DESC LIMIT 1",
                   [pk]),
        "threshold": (f"SELECT low_balance_threshold FROM {tables['prefs']} WHERE account_id = %s", [pk]),
        "failure": (f"SELECT auto_top_up_failure FROM {tables['prefs']} WHERE account_id = %s", [pk]),
        "credit": (f"SELECT SUM(amount) FROM {tables['credit']} WHERE account_id = %s", [pk]),
        "past_due_id": (f"SELECT r.id FROM {tables['renewal']} r JOIN {tables['invoice']} i ON i.id = r.invoice_id "
                        "WHERE r.account_id = %s AND r.status = %s AND i.status = %s ORDER BY r.billing_date LIMIT 1",
                        [pk, Renewal.PAST_DUE, Invoice.OPEN]),
        "to_confirm_id": (f"{attempt} AND off_session = %s ORDER BY created_at DESC, id DESC LIMIT 1",
                          [pk, PaymentAttempt.REQUIRES_ACTION, False]),
        "being_confirmed_id": (f"{attempt} ORDER BY created_at DESC, id DESC LIMIT 1", [pk, PaymentAttempt.UNKNOWN]),
    }
    if signup_grant:
        figures["granted"] = (f"SELECT COUNT(*) FROM (SELECT 1 FROM {tables['entry']} WHERE account_id = %s "
                              "AND kind = %s LIMIT 1) AS grant_entry", [pk, TokenEntry.SIGNUP_GRANT])
    card, row = default_card_with(account, **figures)
    return {
        "tokens": row["tokens"] or 0,
        "threshold": (TokenSettings._meta.get_field("low_balance_threshold").default
                      if row["threshold"] is None else row["threshold"]),
        "failure": row["failure"] or "",
        "credit": ZERO if row["credit"] is None else db_money(row["credit"]),
        "card": card,
        "past_due_id": row["past_due_id"], "to_confirm_id": row["to_confirm_id"],
        "being_confirmed_id": row["being_confirmed_id"], "granted": bool(row.get("granted")),
    }


class BillingHeader:
    """Computed lazily, so pages that never show the header run no query for it; the first figure asked
    reads them all (`header_figures`), and a banner's record is loaded only when there is one."""

    def __init__(self, account, user=None):
        self.account, self.user = account, user

    @property
    def _figures(self) -> dict:
        if not hasattr(self, "_read"):
            unverified = self.user is not None and self.user.email_verified_at is None
            self._read = header_figures(self.account, signup_grant=unverified)
        return self._read

    @property
    def token_balance(self) -> int:
        return self._figures["tokens"]

    @property
    def low_balance_threshold(self) -> int:
        return self._figures["threshold"]

    @property
    def low_balance(self) -> bool:
        """Flag the balance at the top right: it is below the owner's low-balance alert."""
        return self.token_balance < self.low_balance_threshold

    @property
    def auto_top_up_failure(self) -> str:
        """Why a decline switched auto top-up off; shown as a banner until the owner switches it on again."""
        return self._figures["failure"]

    @property
    def email_to_verify(self) -> bool:
        """The user has not verified their email and the account still waits for its welcome tokens."""
        return (self.user is not None and self.user.email_verified_at is None
                and not self._figures["granted"])

    @property
    def default_card(self) -> Card | None:
        return self._figures["card"]

    @property
    def past_due(self) -> Renewal | None:
        """The oldest renewal waiting for payment (its licenses past due), or None."""
        if not hasattr(self, "_past_due"):
            found = self._figures["past_due_id"]
            self._past_due = None if found is None else open_renewals(self.account).filter(pk=found).first()
        return self._past_due

    @property
    def next_renewal(self):
        """The next renewal as the run will charge it (Licenses tab)."""
        if not hasattr(self, "_next_renewal"):
            self._next_renewal = next_renewal(self.account, credit=self.credit_balance)
        return self._next_renewal

    @property
    def credit_balance(self) -> Decimal:
        return self._figures["credit"]

    @property
    def test_clock(self):
        """The moment a test account's clock stands at (None for every real account)."""
        return clock.now(self.account) if self.account.is_test_account else None

    @property
    def needs_card(self) -> bool:
        """No default card, or the default card has expired."""
        card = self.default_card
        return card is None or card.is_expired(clock.today(self.account))

    @property
    def payment_to_confirm(self) -> PaymentAttempt | None:
        """An on-session payment waiting for the cardholder's authentication (3-D Secure)."""
        return self._attempt("to_confirm_id")

    @property
    def payment_being_confirmed(self) -> PaymentAttempt | None:
        """A payment the processor has not answered for: the owner sees it is being confirmed."""
        return self._attempt("being_confirmed_id")

    def _attempt(self, which: str) -> PaymentAttempt | None:
        found = self._figures[which]
        if found is None:
            return None
        cached = f"_{which}"
        if not hasattr(self, cached):
            setattr(self, cached, PaymentAttempt.objects.filter(pk=found).first())
        return getattr(self, cached)
