"""Admin for what the billing run keeps (renewals, notices), and the account page's billing side:
credit, past due, the next renewal, its renewals, and the test clock (attach, advance, detach).

The account admin itself lives in accounts; billing extends it here because only this layer knows
renewals and test clocks (apps import only from the layers above them).
"""

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from accounts.admin import AccountAdmin
from accounts.models import Account
from billing.clocks import ClockRefused, clock_advance, clock_attach, clock_detach, clocks_allowed, parse_moment
from billing.models import BillingNotice, ProcessorEvent, Renewal
from billing.renewals import next_renewal, open_renewals
from billing.support import (
    SupportRefused,
    account_credit_grant,
    invoice_refund,
    invoice_void,
    license_cancel_now,
    refundable,
)
from invoices.admin import InvoiceAdmin
from invoices.models import Invoice
from licenses.admin import LicenseAdmin
from licenses.models import License, LicenseTerm
from payments.models import PaymentAttempt
from payments.services import credit_balance
from pictor_billing import clock, pricing
from pictor_billing.admin import ReadOnlyAdmin, ReadOnlyInline
from pictor_billing.money import format_usd


class RenewalInline(ReadOnlyInline):
    model = Renewal
    fields = ["billing_date", "status", "invoice", "failed_attempts", "first_failed_on", "next_retry_on",
              "created_at"]
    readonly_fields = fields
    show_change_link = True


@admin.register(Renewal)
class RenewalAdmin(ReadOnlyAdmin):
    """One row per account and billing date, written only by the billing run (and test clocks)."""

    list_display = ["billing_date", "account", "status", "invoice", "failed_attempts", "next_retry_on", "created_at"]
    list_filter = ["status", "billing_date"]
    search_fields = ["account__name", "invoice__number"]
    list_select_related = ["account", "invoice"]
    date_hierarchy = "billing_date"


@admin.register(BillingNotice)
class BillingNoticeAdmin(ReadOnlyAdmin):
    list_display = ["sent_at", "account", "kind", "key"]
    list_filter = ["kind"]
    search_fields = ["account__name"]
    list_select_related = ["account"]


class HandledFilter(admin.SimpleListFilter):
    title = "handled"
    parameter_name = "handled"

    def lookups(self, request, model_admin):
        return [("yes", "Handled"), ("no", "Not handled (failed; Stripe delivers it again)")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(handled_at__isnull=self.value() == "no")
        return queryset


@admin.register(ProcessorEvent)
class ProcessorEventAdmin(ReadOnlyAdmin):
    """Every event the processor's webhook received, once each, with what handling it did.

    Disputes are flagged here for support (Needs support: yes), with the invoice they are about.
    """

    list_display = ["received_at", "type", "event_id", "needs_support", "account", "invoice", "outcome",
                    "handled_at"]
    list_filter = ["needs_support", HandledFilter, "type", "livemode"]
    search_fields = ["event_id", "object_id", "invoice__number", "account__name"]
    list_select_related = ["account", "invoice"]
    date_hierarchy = "received_at"


SHOWN = 20  # terms and attempts listed on an account's page; the full lists are linked under Records


class TestClockForm(forms.Form):
    """Attach (a start time), advance (a later time, or +15d), or detach an account's test clock."""

    ATTACH, ADVANCE, DETACH = "attach", "advance", "detach"
    action = forms.ChoiceField(choices=[(ATTACH, "Attach a test clock, standing at the time below"),
                                        (ADVANCE, "Advance to the time below, running everything due on the way"),
                                        (DETACH, "Detach: the clock stays where it stands")],
                               widget=forms.RadioSelect)
    time = forms.CharField(required=False, max_length=40,
                           help_text="ISO 8601 with its time zone, e.g. 2027-01-31T10:00:00Z; "
                                     "for advance also +15d or +12h.")


admin.site.unregister(Account)


class BillingAccountAdmin(AccountAdmin):
    """The account page, with its billing state and its renewals, and its test clock."""

    readonly_fields = [*AccountAdmin.readonly_fields, "billing_state", "test_clock", "records", "current_terms",
                       "recent_attempts"]
    inlines = [*AccountAdmin.inlines, RenewalInline]

    @admin.display(description="Billing")
    def billing_state(self, account):
        if account.pk is None:
            return "-"
        parts = [("Credit balance", format_usd(credit_balance(account)))]
        past_due = open_renewals(account).filter(status=Renewal.PAST_DUE)
        parts += [("Past due", f"{format_usd(renewal.invoice.total)} (invoice {renewal.invoice.number}, "
                               f"renewal of {renewal.billing_date}, next retry {renewal.next_retry_on or 'none'})")
                  for renewal in past_due]
        upcoming = next_renewal(account)
        parts.append(("Next renewal", f"{upcoming.billing_date}: {upcoming.what}, {format_usd(upcoming.total_due)}"
                      if upcoming else "nothing renews"))
        return format_html_join(mark_safe("<br>"), "{}: {}", parts)

    @admin.display(description="Paid terms (licenses not expired)")
    def current_terms(self, account):
        if account.pk is None:
            return "-"
        terms = (LicenseTerm.objects.filter(license__account=account).exclude(license__status=License.EXPIRED)
                 .select_related("invoice").order_by("-starts_on", "-pk")[:SHOWN])
        rows = [(reverse("admin:licenses_license_change", args=[term.license_id]), term.license_id,
                 f"{term.get_kind_display()}: {term.tier} {term.period}, {term.starts_on} – {term.ends_on}, "
                 f"list {format_usd(term.list_price)} at {pricing.percent(term.rate)}, paid {format_usd(term.paid)}",
                 term.invoice.number if term.invoice else "no invoice") for term in terms]
        return format_html_join(mark_safe("<br>"), '<a href="{}">#{}</a> {} ({})', rows) or "None"

    @admin.display(description=f"Payment attempts (latest {SHOWN})")
    def recent_attempts(self, account):
        if account.pk is None:
            return "-"
        attempts = PaymentAttempt.objects.filter(account=account).select_related("card", "invoice").order_by("-pk")
        rows = [(reverse("admin:payments_paymentattempt_change", args=[attempt.pk]), attempt.pk,
                 f"{attempt.created_at:%Y-%m-%d %H:%M} {attempt.get_purpose_display()}, {attempt.get_kind_display()} "
                 f"{format_usd(attempt.amount)} on {attempt.card.label if attempt.card else 'no card'}: "
                 f"{attempt.get_status_display()}{f' ({attempt.failure_reason})' if attempt.failure_reason else ''}",
                 attempt.invoice.number if attempt.invoice and attempt.invoice.number else "no invoice")
                for attempt in attempts[:SHOWN]]
        return format_html_join(mark_safe("<br>"), '<a href="{}">#{}</a> {} ({})', rows) or "None"

    @admin.display(description="Test clock")
    def test_clock(self, account):
        if account.pk is None:
            return "-"
        url = reverse("admin:accounts_account_test_clock", args=[account.pk])
        if account.test_clock_attached:
            return format_html('Stands at {} UTC. <a href="{}">Advance or detach…</a>',
                               f"{clock.now(account):%Y-%m-%d %H:%M}", url)
        if account.is_test_account:
            return format_html("Detached; frozen at {} UTC (a test account for ever).",
                               f"{clock.now(account):%Y-%m-%d %H:%M}")
        if not clocks_allowed():
            return "Test clocks are switched off here."
        if Invoice.objects.filter(account=account).exists() or PaymentAttempt.objects.filter(account=account).exists():
            return "None (it has invoices or payments: a test clock needs a fresh account)."
        return format_html('None. <a href="{}">Attach a test clock…</a>', url)

    @admin.display(description="Records")
    def records(self, account):
        if account.pk is None:
            return "-"
        links = [("Licenses", "admin:licenses_license_changelist"), ("Invoices", "admin:invoices_invoice_changelist"),
                 ("Payment attempts", "admin:payments_paymentattempt_changelist"),
                 ("Credit ledger", "admin:payments_creditentry_changelist")]
        records = format_html_join(" · ", '<a href="{}?account__id__exact={}">{}</a>',
                                   ((reverse(name), account.pk, label) for label, name in links))
        return format_html('{} · <a href="{}">Issue a credit…</a>', records,
                           reverse("admin:accounts_account_credit", args=[account.pk]))

    def get_urls(self):
        views = [path("<int:pk>/test-clock/", self.admin_site.admin_view(self.test_clock_view),
                      name="accounts_account_test_clock"),
                 path("<int:pk>/credit/", self.admin_site.admin_view(self.credit_view), name="accounts_account_credit")]
        return [*views, *super().get_urls()]

    def test_clock_view(self, request, pk):
        """Attach, advance or detach the account's test clock; advancing returns once everything due ran."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        account = get_object_or_404(Account, pk=pk)
        form = TestClockForm(request.POST or None, initial={
            "action": TestClockForm.ADVANCE if account.test_clock_attached else TestClockForm.ATTACH})
        # Offer what the clock's state allows: attach on a fresh account, advance or detach an attached one.
        allowed = {TestClockForm.ADVANCE, TestClockForm.DETACH} if account.test_clock_attached else {
            TestClockForm.ATTACH}
        field = form.fields["action"]
        field.choices = [choice for choice in field.choices if choice[0] in allowed]
        if request.method == "POST" and form.is_valid():
            try:
                done = self._clock_act(account, form.cleaned_data["action"], form.cleaned_data["time"])
            except ClockRefused as refused:
                form.add_error(None, f"{refused} Nothing was changed.")
            else:
                messages.success(request, done)
                return redirect("admin:accounts_account_change", account.pk)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "form": form,
                   "account": account, "title": f"Test clock for {account}",
                   "stands_at": clock.now(account) if account.is_test_account else None}
        return TemplateResponse(request, "billing/admin/test_clock.html", context, status=400 if form.errors else 200)

    @staticmethod
    def _clock_act(account: Account, action: str, time: str) -> str:
        if action == TestClockForm.DETACH:
            account = clock_detach(account=account)
            return f"Test clock detached from {account}: frozen at {clock.now(account):%Y-%m-%d %H:%M} UTC."
        if not time.strip():
            raise ClockRefused("Give a time.")
        if action == TestClockForm.ATTACH:
            account = clock_attach(account=account, start=parse_moment(time))
            return f"Test clock attached to {account}, standing at {clock.now(account):%Y-%m-%d %H:%M} UTC."
        summary = clock_advance(account=account, to=parse_moment(time, since=clock.now(account)))
        outcomes = summary.outcomes
        return (f"{account}'s clock now stands at {clock.now(account):%Y-%m-%d %H:%M} UTC: {summary.renewed} renewed, "
                f"{outcomes.get('succeeded', 0)} charges paid, {outcomes.get('failed', 0)} failed, "
                f"{summary.retries} retries, {summary.expired} licenses expired, "
                f"{format_usd(summary.charged)} charged.")


# --- support actions ---------------------------------------------------------------------------------

class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=200, widget=forms.TextInput(attrs={"size": 60}),
                             help_text="Kept with the action, the credit note and the invoice's history.")


class AmountForm(ReasonForm):
    amount = forms.DecimalField(label="Amount (USD)", min_value=Decimal("0.01"), max_digits=10, decimal_places=2)
    field_order = ["amount", "reason"]


class CreditForm(AmountForm):
    invoice = forms.ModelChoiceField(queryset=Invoice.objects.none(), help_text="The invoice the credit note corrects.")

    def __init__(self, *args, account, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["invoice"].queryset = Invoice.objects.filter(account=account).exclude(
            kind=Invoice.CREDIT_NOTE).exclude(number=None).order_by("-issued_on", "-pk")
        self.order_fields(["invoice", "amount", "reason"])


class SupportActions:
    """One confirm page per support action: a form with the reason (and amount), then the service."""

    def support_page(self, request, obj, *, form, action, submit, explain, run, back):
        if not self.has_view_permission(request) or not request.user.is_staff or not (
                request.user.is_superuser or request.user.has_perm("accounts.change_account")):
            raise PermissionDenied
        if request.method == "POST" and form.is_valid():
            try:
                done = run(form.cleaned_data, request.user)
            except SupportRefused as refused:
                form.add_error(None, str(refused))
            else:
                messages.success(request, done)
                return redirect(back)
        opts = self.model._meta
        context = {**self.admin_site.each_context(request), "opts": opts, "form": form, "title": f"{action}: {obj}",
                   "action": action, "submit": submit, "explain": explain, "subject": str(obj), "back_url": back,
                   "changelist_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")}
        return TemplateResponse(request, "billing/admin/support_action.html", context,
                                status=400 if form.errors else 200)


def _links(obj, actions) -> str:
    return format_html_join(" · ", '<a href="{}">{}</a>', ((reverse(name, args=[obj.pk]), label)
                                                          for label, name in actions)) or "-"


admin.site.unregister(License)


@admin.register(License)
class SupportLicenseAdmin(SupportActions, LicenseAdmin):
    readonly_fields = [*LicenseAdmin.readonly_fields, "support"]
    fields = [*LicenseAdmin.fields, "next_tier", "next_period", "support"]

    @admin.display(description="Support")
    def support(self, lic):
        if lic.pk is None or lic.has_ended:
            return "-"
        return _links(lic, [("Cancel now with a pro-rata credit…", "admin:licenses_license_cancel_now")])

    def get_urls(self):
        return [path("<int:pk>/cancel-now/", self.admin_site.admin_view(self.cancel_now_view),
                     name="licenses_license_cancel_now"), *super().get_urls()]

    def cancel_now_view(self, request, pk):
        lic = get_object_or_404(License, pk=pk)

        def run(data, admin_user):
            lic_after, note = license_cancel_now(license=lic, admin=admin_user, reason=data["reason"])
            credited = (f" {format_usd(-note.total)} credited to the account's balance by {note.number}." if note
                        else " Nothing was credited.")
            return f"License #{lic.pk} ended today.{credited}"

        return self.support_page(
            request, lic, form=ReasonForm(request.POST or None), action="Cancel now", submit="End the license now",
            explain=[f"License #{lic.pk} ({lic.get_tier_display()} {lic.period}) of {lic.account} ends today: a live "
                     "event on it ends too. Its unused share is credited to the account's balance by a credit note "
                     "against the invoice that paid for its period."],
            run=run, back=reverse("admin:licenses_license_change", args=[lic.pk]))


admin.site.unregister(Invoice)


@admin.register(Invoice)
class SupportInvoiceAdmin(SupportActions, InvoiceAdmin):
    readonly_fields = [*InvoiceAdmin.readonly_fields, "support"]

    @admin.display(description="Support")
    def support(self, invoice):
        if invoice.pk is None or invoice.is_credit_note:
            return "-"
        actions = []
        if invoice.status == Invoice.PAID and refundable(invoice):
            actions.append(("Refund to the card…", "admin:invoices_invoice_refund"))
        if invoice.status == Invoice.OPEN:
            actions.append(("Void…", "admin:invoices_invoice_void"))
        return _links(invoice, actions)

    def get_urls(self):
        return [path("<int:pk>/refund/", self.admin_site.admin_view(self.refund_view), name="invoices_invoice_refund"),
                path("<int:pk>/void/", self.admin_site.admin_view(self.void_view), name="invoices_invoice_void"),
                *super().get_urls()]

    def refund_view(self, request, pk):
        invoice = get_object_or_404(Invoice, pk=pk)
        left = refundable(invoice)

        def run(data, admin_user):
            refund, note = invoice_refund(invoice=invoice, amount=data["amount"], admin=admin_user,
                                          reason=data["reason"])
            return f"{format_usd(refund.amount)} refunded to the card; credit note {note.number} issued."

        return self.support_page(
            request, invoice, form=AmountForm(request.POST or None, initial={"amount": left}), action="Refund",
            submit="Refund to the card",
            explain=[f"{invoice.number} ({invoice.description}, {format_usd(invoice.total)}): at most "
                     f"{format_usd(left)} can be refunded. The money goes back to the card that paid; a credit note "
                     "records it, and a full refund marks the invoice credited."],
            run=run, back=reverse("admin:invoices_invoice_change", args=[invoice.pk]))

    def void_view(self, request, pk):
        invoice = get_object_or_404(Invoice, pk=pk)

        def run(data, admin_user):
            note = invoice_void(invoice=invoice, admin=admin_user, reason=data["reason"])
            return f"{invoice.number} is void{f'; credit note {note.number} cancels it' if note else ''}."

        return self.support_page(
            request, invoice, form=ReasonForm(request.POST or None), action="Void", submit="Void the invoice",
            explain=[f"{invoice.number} ({invoice.description}, {format_usd(invoice.total)}) will never be charged. "
                     "A credit note cancels it and the credit it used returns; the licenses a renewal renewed end, "
                     "paid until its billing date."],
            run=run, back=reverse("admin:invoices_invoice_change", args=[invoice.pk]))


class CreditActions(SupportActions):
    def credit_view(self, request, pk):
        account = get_object_or_404(Account, pk=pk)

        def run(data, admin_user):
            note = account_credit_grant(account=account, invoice=data["invoice"], amount=data["amount"],
                                        admin=admin_user, reason=data["reason"])
            return f"{format_usd(-note.total)} credited to {account}'s balance by credit note {note.number}."

        return self.support_page(
            request, account, form=CreditForm(request.POST or None, account=account), action="Issue a credit",
            submit="Issue the credit",
            explain=[f"A credit goes to {account}'s credit balance (now {format_usd(credit_balance(account))}) and is "
                     "used by its next charge. A credit note against the invoice chosen records it; the credit notes "
                     "against one invoice never add up to more than its total."],
            run=run, back=reverse("admin:accounts_account_change", args=[account.pk]))


@admin.register(Account)
class BillingSupportAccountAdmin(CreditActions, BillingAccountAdmin):
    """The account page with its billing state, test clock and support credit."""
