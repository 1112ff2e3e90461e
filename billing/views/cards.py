"""Removing a card: refused while active licenses would be left without a default card."""

from django.contrib import messages
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_POST

from accounts.decorators import account_required
from billing.cards import card_remove
from payments.models import Card
from payments.services import CardGone, CardRemovalRefused
from payments.views import back_to_tab


@require_POST
@account_required
def card_remove_view(request, pk):
    """Remove a card, unless active licenses still renew on it."""
    card = get_object_or_404(Card.all_objects, pk=pk, account=request.account)
    try:
        new_default = card_remove(account=request.account, card=card)
    except CardRemovalRefused as refused:
        messages.error(request, str(refused))
        return back_to_tab(request, status=409)
    except CardGone:
        messages.info(request, f"{card.label} was already removed.")
        return back_to_tab(request, status=409)
    promoted = f" {new_default.label} is now your default card." if new_default else ""
    messages.success(request, f"{card.label} removed.{promoted}")
    return back_to_tab(request)
