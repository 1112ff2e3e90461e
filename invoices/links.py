"""Links to a table's invoices, from one `reverse` each (pictor_billing.links)."""

from collections.abc import Callable

from pictor_billing.links import row_link

SAMPLE_NUMBER = "PB-2000-000000"  # the shape of every invoice number (invoices/urls.py's pattern)


def number_link(url_name: str) -> Callable[[str], str]:
    """number -> the URL named `url_name` for that invoice number, from one reverse. Invoice numbers
    (PB-YYYY-NNNNNN, PB-TEST-YYYY-NNNNNN) are letters, digits and dashes: nothing to quote."""
    return row_link(url_name, SAMPLE_NUMBER)
