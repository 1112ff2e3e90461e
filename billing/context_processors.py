"""The Billing header on every page: token balance (flagged when low), Top Up, and the banners
(past due, no card, auto top-up switched off by a decline, a payment to confirm or being confirmed,
an email to verify)."""

from billing.models import Renewal
from billing.renewals import next_renewal, open_renewals
from payments.models import PaymentAttempt
from payments.services import credit_balance, default_card
from pictor_billing import clock
from tokens.models import TokenSettings
from tokens.services import signup_granted, token_balance


def billing_header(request):
    """Figures for the top-right balance and the banners; nothing for anonymous users or staff without an account."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or user.account_id is None:
        return {}
    return {"billing": BillingHeader(user.account, user)}


class BillingHeader:
    """Computed lazily, so pages that never show the header run no query for it."""

    def __init__(self, account, user=None):
        self.account, self.user = account, user

    @property
    def token_balance(self) -> int:
        if not hasattr(self, "_tokens"):
            self._tokens = token_balance(self.account)
        return self._tokens

    @property
    def _token_settings(self) -> tuple[int, str]:
        """(low-balance threshold, auto top-up failure) in one query; the model's defaults before any are saved."""
        if not hasattr(self, "_prefs"):
            self._prefs = (TokenSettings.objects.filter(account=self.account)
                           .values_list("low_balance_threshold", "auto_top_up_failure").first()
                           or (TokenSettings._meta.get_field("low_balance_threshold").default, ""))
        return self._prefs

    @property
    def low_balance_threshold(self) -> int:
        return self._token_settings[0]

    @property
    def low_balance(self) -> bool:
        """Flag the balance at the top right: it is below the owner's low-balance alert."""
        return self.token_balance < self.low_balance_threshold

    @property
    def auto_top_up_failure(self) -> str:
        """Why a decline switched auto top-up off; shown as a banner until the owner switches it on again."""
        return self._token_settings[1]

    @property
    def email_to_verify(self) -> bool:
        """The user has not verified their email and the account still waits for its welcome tokens."""
        return (self.user is not None and self.user.email_verified_at is None
                and not signup_granted(self.account))

    @property
    def default_card(self):
        if not hasattr(self, "_card"):
            self._card = default_card(self.account)
        return self._card

    @property
    def past_due(self) -> Renewal | None:
        """The oldest renewal waiting for payment (its licenses past due), or None."""
        if not hasattr(self, "_past_due"):
            self._past_due = open_renewals(self.account).filter(status=Renewal.PAST_DUE).first()
        return self._past_due

    @property
    def next_renewal(self):
        """The next renewal as the run will charge it (Licenses tab)."""
        if not hasattr(self, "_next_renewal"):
            self._next_renewal = next_renewal(self.account)
        return self._next_renewal

    @property
    def credit_balance(self):
        return credit_balance(self.account)

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
        return (PaymentAttempt.objects.filter(account=self.account, status=PaymentAttempt.REQUIRES_ACTION,
                                              off_session=False).order_by("-created_at").first())

    @property
    def payment_being_confirmed(self) -> PaymentAttempt | None:
        """A payment the processor has not answered for: the owner sees it is being confirmed."""
        return PaymentAttempt.objects.filter(account=self.account, status=PaymentAttempt.UNKNOWN).first()
