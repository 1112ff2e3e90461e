"""Billing › Device API keys: list the account's keys, create one (shown once), revoke one."""

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods

from accounts.api_keys import PREFIX_LENGTH, ApiKeyPrefixTaken, api_key_create, api_key_revoke
from accounts.decorators import account_required
from accounts.models import ApiKey
from pictor_billing.form_tokens import form_token_new, form_token_nonce
from pictor_billing.htmx import render_htmx

TOKEN_SALT = "accounts.api_key_create"
ALREADY_CREATED = ("This key was already created; its secret was shown once and cannot be shown again. "
                   "If it was not copied, revoke it and create another.")


class ApiKeyForm(forms.Form):
    name = forms.CharField(label="Key name", max_length=100, help_text="Which booth or device will use it.")
    # One-time and signed (see pictor_billing/form_tokens.py); the new key's prefix comes from it, so the
    # same form posted twice (a double click, a reload) makes one key.
    token = forms.CharField(widget=forms.HiddenInput, max_length=200)


def _fresh_form(request, data=None) -> ApiKeyForm:
    token = form_token_new(account_id=request.account.pk, salt=TOKEN_SALT)
    if data is None:
        return ApiKeyForm(initial={"token": token})
    data = data.copy()
    data["token"] = token
    return ApiKeyForm(data)


def _page(request, *, form=None, created=None, plain_key="", revoking=None, status=200):
    context = {"tab": "licenses", "form": form or _fresh_form(request), "created": created, "plain_key": plain_key,
               "revoking": revoking, "api_keys": ApiKey.objects.filter(account=request.account)
               .select_related("created_by")}
    response = render_htmx(request, "accounts/api_keys.html", context,
                           partial="revoke_dialog" if revoking else "keys", status=status)
    add_never_cache_headers(response)  # a new key's page must never come back from a cache
    return response


@require_http_methods(["GET", "POST"])
@account_required
def api_key_list(request):
    """The account's API keys; POST creates one and shows its secret on this answer only."""
    if request.method == "GET":
        return _page(request)
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        return _page(request, form=_fresh_form(request, form.data) if "token" in form.errors else form, status=400)
    nonce = form_token_nonce(form.cleaned_data["token"], account_id=request.account.pk, salt=TOKEN_SALT)
    if nonce is None:
        form = _fresh_form(request, form.data)
        form.add_error(None, "This form has expired. Create the key again.")
        return _page(request, form=form, status=400)
    try:
        api_key, plain = api_key_create(account=request.account, name=form.cleaned_data["name"],
                                        created_by=request.user, prefix=nonce[:PREFIX_LENGTH])
    except ApiKeyPrefixTaken:
        messages.info(request, ALREADY_CREATED)
        return _page(request, status=409)
    return _page(request, created=api_key, plain_key=plain, status=201)


@require_http_methods(["GET", "POST"])
@account_required
def api_key_revoke_view(request, pk):
    """GET asks to confirm (a dialog, or a page without JavaScript); POST revokes the key at once."""
    api_key = get_object_or_404(ApiKey, pk=pk, account=request.account)
    if request.method == "GET":
        return _page(request, revoking=api_key)
    if api_key_revoke(account=request.account, api_key=api_key):
        messages.success(request, f"API key “{api_key.name}” is revoked. Devices using it are refused from now on.")
    else:
        messages.info(request, f"API key “{api_key.name}” was already revoked.")
    return redirect("api_keys:list")
