"""`manage.py finance_demo` (run by seed_demo, so by `make run`): a finance login and a few hundred demo
invoices, consistent with the rules, made once."""

from django.core.management import call_command
from django.db.models import Count, Max, Sum
from django.test import Client

from accounts.models import User
from billing.renewals import accounts_due
from finance.access import is_finance_staff
from invoices.models import Invoice, InvoiceLine, InvoiceSequence
from licenses.models import License
from pictor_billing import clock


def test_the_demo_books_are_made_once_and_keep_the_rules(db, capsys):
    call_command("finance_demo")
    out = capsys.readouterr().out
    assert "finance@pictor.example / pictor-finance-2026" in out
    user = User.objects.get(email="finance@pictor.example")
    assert is_finance_staff(user) and user.account_id is None and user.check_password("pictor-finance-2026")
    count = Invoice.objects.count()
    assert count >= 300
    assert set(Invoice.objects.values_list("kind", flat=True)) >= {Invoice.PURCHASE, Invoice.RENEWAL, Invoice.TOP_UP,
                                                                   Invoice.CREDIT_NOTE}
    assert Invoice.objects.filter(status=Invoice.OPEN).exists()
    # Gap-free numbers per year, and the sequence row knows the last one.
    for year in Invoice.objects.values_list("year", flat=True).distinct():
        sequences = sorted(Invoice.objects.filter(year=year, series="").values_list("sequence", flat=True))
        assert sequences == list(range(1, len(sequences) + 1))
        assert InvoiceSequence.objects.get(series="", year=year).last_number == len(sequences)
    # Lines sum to each total.
    sums = dict(InvoiceLine.objects.values("invoice").annotate(s=Sum("amount")).values_list("invoice", "s"))
    assert all(sums[pk] == total for pk, total in Invoice.objects.values_list("pk", "total"))
    # Nothing is due for the billing run: the scheduler leaves the demo accounts alone today.
    assert not list(accounts_due(clock.today()))
    assert not License.objects.active().filter(period_end__lte=clock.today()).exists()

    call_command("finance_demo")
    assert Invoice.objects.count() == count
    assert User.objects.filter(email="finance@pictor.example").count() == 1

    browser = Client()
    browser.force_login(user)
    for url in ["/finance/invoices/", "/finance/receivables/", "/finance/revenue/"]:
        assert browser.get(url).status_code == 200, url
    assert Invoice.objects.values("account").annotate(n=Count("pk")).aggregate(m=Max("n"))["m"] > 5
