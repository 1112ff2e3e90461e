"""The Billing header on every page: token balance, Top Up, and past-due / no-card banners."""

from django.utils import timezone


def billing_header(request):
    """Figures for the top-right balance and the banners; nothing for anonymous users or staff without an account."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or user.account_id is None:
        return {}
    return {"billing": BillingHeader(user.account)}


class BillingHeader:
    """Computed lazily, so pages that never show the header run no query for it."""

    def __init__(self, account):
        self.account = account

    @property
    def token_balance(self) -> int:
        from tokens.services import token_balance

        if not hasattr(self, "_tokens"):
            self._tokens = token_balance(self.account)
        return self._tokens

    @property
    def default_card(self):
        from payments.services import default_card

        if not hasattr(self, "_card"):
            self._card = default_card(self.account)
        return self._card

    @property
    def past_due(self) -> bool:
        from licenses.models import License

        return License.objects.filter(account=self.account, status=License.PAST_DUE).exists()

    @property
    def needs_card(self) -> bool:
        """No default card, or the default card has expired."""
        card = self.default_card
        return card is None or card.is_expired(timezone.now().date())
