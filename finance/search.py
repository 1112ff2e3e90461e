"""The invoice search across accounts: its filter form, the filtered and sorted queryset, its totals.

Filters live in the URL (a GET form). Sorting takes only the columns in SORTS. Test accounts are
left out of the finance area (SPEC, Finance staff).
"""

from django import forms
from django.db.models import Count, Exists, OuterRef, Q, Sum

from accounts.models import User
from invoices.models import Invoice
from pictor_billing.money import ZERO, to_money

PAGE_SIZE = 50

# Column -> the order_by fields (ascending); "-column" sorts descending. Ties end on the pk.
SORTS = {
    "number": ("series", "year", "sequence"),
    "issued": ("issued_on", "year", "sequence"),
    "account": ("account__name", "issued_on", "sequence"),
    "kind": ("kind", "issued_on", "sequence"),
    "status": ("status", "issued_on", "sequence"),
    "total": ("total", "issued_on", "sequence"),
}
DEFAULT_SORT = "-issued"
SORT_CHOICES = [(key, key) for name in SORTS for key in (name, f"-{name}")]


class InvoiceSearchForm(forms.Form):
    q = forms.CharField(label="Number, account or email", required=False, max_length=200)
    issued_from = forms.DateField(label="Issued from", required=False)
    issued_to = forms.DateField(label="Issued to", required=False)
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "Any status"), *Invoice.STATUS_CHOICES])
    kind = forms.ChoiceField(label="Kind", required=False, choices=[("", "Any kind"), *Invoice.KIND_CHOICES])
    amount_min = forms.DecimalField(label="Amount from", required=False, max_digits=12, decimal_places=2)
    amount_max = forms.DecimalField(label="Amount to", required=False, max_digits=12, decimal_places=2)
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES)

    FILTER_FIELDS = ("q", "issued_from", "issued_to", "status", "kind", "amount_min", "amount_max")

    def filters(self) -> dict:
        """The valid filters as plain strings (what an export records); invalid or empty ones are left out."""
        self.is_valid()  # cleaned_data then holds the valid fields only
        data = self.cleaned_data
        return {name: str(data[name]) for name in self.FILTER_FIELDS if data.get(name) not in (None, "")}

    @property
    def sort_key(self) -> str:
        return (getattr(self, "cleaned_data", {}) or {}).get("sort") or DEFAULT_SORT


def finance_invoices():
    """Every invoice of every real account (test accounts left out)."""
    return Invoice.objects.filter(account__is_test_account=False, number__isnull=False)


def invoices_filtered(form: InvoiceSearchForm):
    """The invoices the form's valid filters select, sorted by its whitelisted sort (invalid fields are ignored)."""
    form.is_valid()
    data = getattr(form, "cleaned_data", {})
    invoices = finance_invoices()
    q = (data.get("q") or "").strip()
    if q:
        users = User.objects.filter(account_id=OuterRef("account_id"), email__icontains=q)
        invoices = invoices.filter(Q(number__icontains=q) | Q(account__name__icontains=q)
                                   | Q(buyer_name__icontains=q) | Q(account__billing_email__icontains=q)
                                   | Exists(users))
    if data.get("issued_from"):
        invoices = invoices.filter(issued_on__gte=data["issued_from"])
    if data.get("issued_to"):
        invoices = invoices.filter(issued_on__lte=data["issued_to"])
    if data.get("status"):
        invoices = invoices.filter(status=data["status"])
    if data.get("kind"):
        invoices = invoices.filter(kind=data["kind"])
    if data.get("amount_min") is not None:
        invoices = invoices.filter(total__gte=data["amount_min"])
    if data.get("amount_max") is not None:
        invoices = invoices.filter(total__lte=data["amount_max"])
    key = form.sort_key
    fields = SORTS[key.lstrip("-")]
    prefix = "-" if key.startswith("-") else ""
    return invoices.order_by(*(f"{prefix}{field}" for field in fields), f"{prefix}pk")


def invoice_totals(invoices) -> dict:
    """Count, charged (sum of positive totals) and credited (sum of negative totals) in one aggregate query."""
    totals = invoices.order_by().aggregate(
        count=Count("pk"), charged=Sum("total", filter=Q(total__gt=0)), credited=Sum("total", filter=Q(total__lt=0)))
    # SQLite sums decimals approximately (-14.9000000000000): back to exact cents.
    return {"count": totals["count"], "charged": to_money(totals["charged"] or ZERO),
            "credited": to_money(totals["credited"] or ZERO)}
