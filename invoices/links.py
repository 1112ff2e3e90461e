"""Links to many invoices from one `reverse`: a table of 25 or 50 invoices reversed each row's links one
by one, and Django's reverse (~30 µs) was a tenth of the Invoices tab's time."""

from collections.abc import Callable

from django.urls import reverse

SAMPLE_NUMBER = "PB-2000-000000"  # the shape of every invoice number (invoices/urls.py's pattern)


def number_link(url_name: str) -> Callable[[str], str]:
    """number -> the URL named `url_name` for that invoice number, from one reverse. Invoice numbers
    (PB-YYYY-NNNNNN, PB-TEST-YYYY-NNNNNN) are letters, digits and dashes: nothing to quote."""
    link = reverse(url_name, args=[SAMPLE_NUMBER])
    return lambda number: link.replace(SAMPLE_NUMBER, number)
