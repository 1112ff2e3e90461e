"""Removing a card: asked first (a dialog, or a page without JavaScript), refused while active licenses
would be left without a default card."""

from django.contrib import messages
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import account_required
from billing.cards import card_remove, card_remove_preview
from payments.models import Card
from payments.services import CardGone, CardRemovalRefused
from payments.views import CARDS_PLACE, back_to_tab
from pictor_billing.htmx import render_htmx


@require_GET
@account_required
def card_remove_confirm(request, pk):
    """Ask before removing: which card, and which one becomes the default (or why it cannot go)."""
    card = get_object_or_404(Card, pk=pk, account=request.account)
    refusal, successor = card_remove_preview(account=request.account, card=card)
    return render_htmx(request, "payments/card_remove.html", {
        "card": card, "refusal": refusal, "successor": successor, "tab": "payment"}, partial="modal")


@require_POST
@account_required
def card_remove_view(request, pk):
    """Remove a card, unless active licenses still renew on it."""
    card = get_object_or_404(Card.all_objects, pk=pk, account=request.account)
    try:
        new_default = card_remove(account=request.account, card=card)
    except CardRemovalRefused as refused:
        messages.error(request, str(refused), extra_tags=CARDS_PLACE)
        return back_to_tab(request, status=409)
    except CardGone:
        messages.info(request, f"{card.label} was already removed.", extra_tags=CARDS_PLACE)
        return back_to_tab(request, status=409)
    promoted = f" {new_default.label} is now your default card." if new_default else ""
    messages.success(request, f"{card.label} removed.{promoted}", extra_tags=CARDS_PLACE)
    return back_to_tab(request)
