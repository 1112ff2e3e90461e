"""Admin for what the billing run keeps (renewals, notices), and the account page's billing side:
credit, past due, the next renewal, its renewals, and the test clock (attach, advance, detach).

The account admin itself lives in accounts; billing extends it here because only this layer knows
renewals and test clocks (apps import only from the layers above them).
"""

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
from billing.models import BillingNotice, Renewal
from billing.renewals import next_renewal, open_renewals
from invoices.models import Invoice
from payments.models import PaymentAttempt
from payments.services import credit_balance
from pictor_billing import clock
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


@admin.register(Account)
class BillingAccountAdmin(AccountAdmin):
    """The account page, with its billing state and its renewals, and its test clock."""

    readonly_fields = [*AccountAdmin.readonly_fields, "billing_state", "test_clock", "records"]
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
        return format_html_join(" · ", '<a href="{}?account__id__exact={}">{}</a>',
                                ((reverse(name), account.pk, label) for label, name in links))

    def get_urls(self):
        view = path("<int:pk>/test-clock/", self.admin_site.admin_view(self.test_clock_view),
                    name="accounts_account_test_clock")
        return [view, *super().get_urls()]

    def test_clock_view(self, request, pk):
        """Attach, advance or detach the account's test clock; advancing returns once everything due ran."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        account = get_object_or_404(Account, pk=pk)
        form = TestClockForm(request.POST or None, initial={
            "action": TestClockForm.ADVANCE if account.test_clock_attached else TestClockForm.ATTACH})
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
