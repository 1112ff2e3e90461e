"""Every invoice and credit note PDF is a Factur-X / ZUGFeRD e-invoice: a PDF/A-3 carrying the EN 16931 XML
of the same document, valid against the official XSD, whose figures are the stored ones.

One of each kind the Billing area issues (purchase, renewal, one paid by credit balance, plan change with its
credit line, top-up, credit note) goes through the real flows; the XML is read back out of the PDF as a reader
would.
"""

import datetime
import io
import shutil
import subprocess
import uuid
from decimal import Decimal

import pytest
from facturx import get_facturx_xml_from_pdf, xml_check_xsd
from lxml import etree
from pypdf import PdfReader

from accounts.models import Account, User
from billing.changes import license_upgrade
from billing.clocks import clock_advance, clock_attach
from billing.models import Renewal
from billing.support import account_credit_grant
from billing.top_up import tokens_top_up
from invoices.facturx import invoice_facturx_xml
from invoices.models import Invoice
from invoices.pdf import invoice_pdf
from licenses.models import License
from payments.models import CreditEntry
from tests.conftest import add_card
from tests.helpers import buy_directly
from tests.invoices.test_invoices import PDFTOTEXT

D = Decimal
UTC = datetime.UTC
NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
}
SETTLEMENT = "//ram:ApplicableHeaderTradeSettlement"
SUMMATION = f"{SETTLEMENT}/ram:SpecifiedTradeSettlementHeaderMonetarySummation"


def at(month, day, hour=10):
    return datetime.datetime(2027, month, day, hour, tzinfo=UTC)


@pytest.fixture
def clocked(prices, alice):
    """Alice's account on a test clock at Mar 1, 2027, with a Visa."""
    account = clock_attach(account=alice.account, start=at(3, 1))
    add_card(account)
    return account


# The five kinds, each made the way the Billing area makes it.

def a_purchase(account, alice, packages):
    # 5 licenses reach the 10% bracket: the invoice carries a negative volume discount line.
    return buy_directly(account, alice, tier="premium", period="annual", quantity=5).invoice


def a_renewal(account, alice, packages):
    buy_directly(account, alice, tier="basic", period="monthly", quantity=3)
    clock_advance(account=account, to=at(4, 1))
    return Renewal.objects.get(account=account, billing_date=datetime.date(2027, 4, 1)).invoice


def a_renewal_paid_by_credit(account, alice, packages):
    # $147.00 due, all of it from the credit balance: a negative "Credit balance applied" line, $0.00 total.
    buy_directly(account, alice, tier="basic", period="monthly", quantity=3)
    CreditEntry.objects.create(account=account, kind=CreditEntry.ADMIN_CREDIT, amount=D("200.00"), note="Goodwill",
                               created_at=account.clock_frozen_at)
    clock_advance(account=account, to=at(4, 1))
    invoice = Renewal.objects.get(account=account, billing_date=datetime.date(2027, 4, 1)).invoice
    assert (invoice.credit_applied, invoice.total) == (D("147.00"), D("0.00"))
    return invoice


def a_plan_change(account, alice, packages):
    lic = License.objects.get(purchase=buy_directly(account, alice, tier="pro", period="monthly"))
    clock_advance(account=account, to=at(3, 11))
    change, _ = license_upgrade(account=Account.objects.get(pk=account.pk), user=alice, token=uuid.uuid4().hex,
                                license_ids=[lic.pk], tier="premium", period="monthly")
    return change.invoice


def a_top_up(account, alice, packages):
    top_up, _ = tokens_top_up(account=account, package=packages[1], token=uuid.uuid4().hex)
    return top_up.invoice


def a_credit_note(account, alice, packages):
    invoice = buy_directly(account, alice, tier="pro", period="annual").invoice
    admin = User.objects.create_superuser(email="support@pictor.example", password="x-Support-secret-1")
    return account_credit_grant(account=account, invoice=invoice, amount=D("25.50"), admin=admin,
                                reason="Outage on Mar 1")


KINDS = {"purchase": (a_purchase, Invoice.PURCHASE), "renewal": (a_renewal, Invoice.RENEWAL),
         "renewal paid by credit": (a_renewal_paid_by_credit, Invoice.RENEWAL),
         "plan change": (a_plan_change, Invoice.CHANGE), "top-up": (a_top_up, Invoice.TOP_UP),
         "credit note": (a_credit_note, Invoice.CREDIT_NOTE)}


@pytest.fixture(params=KINDS)
def document(request, clocked, alice, packages):
    make, kind = KINDS[request.param]
    invoice = make(clocked, alice, packages)
    assert invoice.kind == kind
    return Invoice.objects.prefetch_related("lines").select_related("refers_to").get(pk=invoice.pk)


def embedded_xml(pdf: bytes) -> bytes:
    filename, xml = get_facturx_xml_from_pdf(pdf, check_xsd=False)
    assert filename == "factur-x.xml", "the PDF carries no factur-x.xml"
    return xml


def figure(root, path: str) -> str:
    found = root.xpath(path, namespaces=NS)
    assert len(found) == 1, f"{path}: {len(found)} found"
    return found[0].text


def quantity_price_amount(line) -> tuple[str, str, str]:
    """An XML invoice line's billed quantity, net price and line amount."""
    return (figure(line, ".//ram:BilledQuantity"), figure(line, ".//ram:NetPriceProductTradePrice/ram:ChargeAmount"),
            figure(line, ".//ram:LineTotalAmount"))


def test_every_kind_of_invoice_carries_its_own_figures_as_schema_valid_en16931_xml(document):
    xml = embedded_xml(invoice_pdf(document))
    assert xml_check_xsd(xml, flavor="factur-x", level="en16931")
    root = etree.fromstring(xml)
    sign = -1 if document.is_credit_note else 1  # a credit note reads in positive amounts
    total = f"{sign * document.total:.2f}"

    assert figure(root, "//rsm:ExchangedDocumentContext/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID") \
        == "urn:cen.eu:en16931:2017"
    assert figure(root, "//rsm:ExchangedDocument/ram:ID") == document.number
    assert figure(root, "//rsm:ExchangedDocument/ram:TypeCode") == ("381" if document.is_credit_note else "380")
    assert figure(root, "//rsm:ExchangedDocument/ram:IssueDateTime/udt:DateTimeString") \
        == document.issued_on.strftime("%Y%m%d")
    assert figure(root, f"{SETTLEMENT}/ram:InvoiceCurrencyCode") == document.currency == "USD"
    assert figure(root, "//ram:SellerTradeParty/ram:Name") == document.seller_name == "Pictor Inc."
    assert figure(root, "//ram:BuyerTradeParty/ram:Name") == document.buyer_name == "Alice Events"
    for name in ("LineTotalAmount", "TaxBasisTotalAmount", "GrandTotalAmount", "DuePayableAmount"):
        assert figure(root, f"{SUMMATION}/ram:{name}") == total, name
    assert figure(root, f"{SUMMATION}/ram:TaxTotalAmount") == "0.00"

    lines = root.xpath("//ram:IncludedSupplyChainTradeLineItem", namespaces=NS)
    stored = list(document.lines.all())
    assert [(figure(line, ".//ram:LineID"), figure(line, ".//ram:SpecifiedTradeProduct/ram:Name"),
             D(figure(line, ".//ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount")))
            for line in lines] == [(str(s.position), s.description, sign * s.amount) for s in stored]
    assert sum((sign * s.amount for s in stored), D(0)) == D(total)


def test_signed_lines_keep_a_positive_price_with_a_negative_quantity(clocked, alice, packages):
    invoice = a_plan_change(clocked, alice, packages)
    root = etree.fromstring(invoice_facturx_xml(invoice))
    credit, charge = root.xpath("//ram:IncludedSupplyChainTradeLineItem", namespaces=NS)
    # Credit min($99, $99) × 21/31 = $67.06 for the unused Pro days; Premium $149 × 21/31 = $100.94.
    assert figure(credit, ".//ram:SpecifiedTradeProduct/ram:Name").startswith("Credit for cancelled license")
    assert quantity_price_amount(credit) == ("-1", "67.06", "-67.06")
    assert quantity_price_amount(charge) == ("1", "100.94", "100.94")
    assert figure(root, f"{SUMMATION}/ram:GrandTotalAmount") == f"{invoice.total:.2f}" == "33.88"
    assert not root.xpath("//ram:SpecifiedTradeAllowanceCharge | //ram:TotalPrepaidAmount", namespaces=NS)


def test_a_credit_note_is_type_381_in_positive_amounts_naming_the_invoice_it_corrects(clocked, alice, packages):
    note = a_credit_note(clocked, alice, packages)
    assert note.total == D("-25.50")
    root = etree.fromstring(invoice_facturx_xml(note))
    assert figure(root, "//rsm:ExchangedDocument/ram:TypeCode") == "381"
    assert figure(root, f"{SUMMATION}/ram:GrandTotalAmount") == "25.50"
    (line,) = root.xpath("//ram:IncludedSupplyChainTradeLineItem", namespaces=NS)
    assert quantity_price_amount(line) == ("1", "25.50", "25.50")
    assert figure(root, f"{SETTLEMENT}/ram:InvoiceReferencedDocument/ram:IssuerAssignedID") == note.refers_to.number
    assert figure(root, f"{SETTLEMENT}/ram:InvoiceReferencedDocument/ram:FormattedIssueDateTime/qdt:DateTimeString") \
        == note.refers_to.issued_on.strftime("%Y%m%d")


def test_with_no_tax_configured_everything_is_outside_the_scope_of_vat(clocked, alice, packages):
    root = etree.fromstring(invoice_facturx_xml(a_purchase(clocked, alice, packages)))
    breakdown = root.xpath(f"{SETTLEMENT}/ram:ApplicableTradeTax", namespaces=NS)
    assert len(breakdown) == 1
    assert figure(breakdown[0], "ram:CategoryCode") == "O"
    assert figure(breakdown[0], "ram:ExemptionReason") == "Not subject to VAT"
    assert figure(breakdown[0], "ram:ExemptionReasonCode") == "VATEX-EU-O"
    assert figure(breakdown[0], "ram:CalculatedAmount") == "0.00"
    assert not root.xpath("//ram:RateApplicablePercent", namespaces=NS)
    assert {c.text for c in root.xpath("//ram:SpecifiedLineTradeSettlement/ram:ApplicableTradeTax/ram:CategoryCode",
                                       namespaces=NS)} == {"O"}


def test_a_renewal_states_its_service_period(clocked, alice, packages):
    root = etree.fromstring(invoice_facturx_xml(a_renewal(clocked, alice, packages)))
    period = f"{SETTLEMENT}/ram:BillingSpecifiedPeriod"
    assert figure(root, f"{period}/ram:StartDateTime/udt:DateTimeString") == "20270401"
    assert figure(root, f"{period}/ram:EndDateTime/udt:DateTimeString") == "20270501"


def test_vat_ids_go_in_when_set_and_stay_out_when_not(settings, clocked, alice, packages):
    root = etree.fromstring(invoice_facturx_xml(a_top_up(clocked, alice, packages)))
    assert not root.xpath("//ram:SpecifiedTaxRegistration", namespaces=NS)
    assert figure(root, "//ram:BuyerTradeParty/ram:PostalTradeAddress/ram:CountryID") == "US"
    assert figure(root, "//ram:SellerTradeParty/ram:PostalTradeAddress/ram:CountryID") == "US"

    settings.SELLER = {**settings.SELLER, "vat_id": "FR40303265045"}
    Account.objects.filter(pk=clocked.pk).update(vat_id="DE123456789", country="Germany")
    invoice = a_top_up(Account.objects.get(pk=clocked.pk), alice, packages)
    root = etree.fromstring(invoice_facturx_xml(invoice))
    assert figure(root, "//ram:SellerTradeParty/ram:SpecifiedTaxRegistration/ram:ID[@schemeID='VA']") \
        == "FR40303265045"
    assert figure(root, "//ram:BuyerTradeParty/ram:SpecifiedTaxRegistration/ram:ID[@schemeID='VA']") \
        == "DE123456789"
    assert figure(root, "//ram:BuyerTradeParty/ram:PostalTradeAddress/ram:CountryID") == "DE"
    assert xml_check_xsd(etree.tostring(root), flavor="factur-x", level="en16931")


def test_the_pdf_claims_pdf_a_3b_and_factur_x_en16931_in_its_metadata(clocked, alice, packages):
    reader = PdfReader(io.BytesIO(invoice_pdf(a_purchase(clocked, alice, packages))))
    catalog = reader.trailer["/Root"]
    xmp = etree.fromstring(catalog["/Metadata"].get_object().get_data().strip())
    rdf = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
    pdfaid = "{http://www.aiim.org/pdfa/ns/id/}"
    fx = "{urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#}"
    (packet,) = xmp.findall(f"{rdf}RDF")  # one rdf:RDF: WeasyPrint's own claims and the Factur-X ones together
    claims = {key: value for description in packet.iter(f"{rdf}Description")
              for key, value in description.attrib.items()}
    assert (claims[f"{pdfaid}part"], claims[f"{pdfaid}conformance"]) == ("3", "B")
    assert {e.tag: e.text for e in packet.iter(f"{fx}*")} == {
        f"{fx}ConformanceLevel": "EN 16931", f"{fx}DocumentFileName": "factur-x.xml",
        f"{fx}DocumentType": "INVOICE", f"{fx}Version": "1.0"}
    # The XML is the document's associated file, as its data, with an XML MIME type.
    (spec,) = [entry.get_object() for entry in catalog["/AF"]]
    assert (spec["/F"], spec["/AFRelationship"]) == ("factur-x.xml", "/Data")
    assert spec["/EF"]["/F"].get_object()["/Subtype"] == "/text/xml"
    assert "/GTS_PDFA1" in [intent.get_object()["/S"] for intent in catalog["/OutputIntents"]]


def test_an_issued_invoice_renders_the_same_bytes_every_time(clocked, alice, packages):
    invoice = a_renewal(clocked, alice, packages)
    first = invoice_pdf(invoice)
    clock_advance(account=invoice.account, to=at(4, 3))
    assert invoice_pdf(Invoice.objects.get(pk=invoice.pk)) == first


@pytest.mark.skipif(not shutil.which(PDFTOTEXT), reason="pdftotext (poppler-utils) is not installed")
def test_the_page_still_reads_as_text_with_the_figures_the_xml_carries(clocked, alice, packages, tmp_path):
    invoice = a_purchase(clocked, alice, packages)
    path = tmp_path / "invoice.pdf"
    path.write_bytes(invoice_pdf(invoice))
    words = subprocess.run([PDFTOTEXT, "-layout", str(path), "-"], check=True, capture_output=True,
                           text=True).stdout
    assert "Premium license, annual" in words and "Volume discount 10%" in words
    assert "$7,450.00" in words and "\u2212$745.00" in words and "$6,705.00" in words
    assert invoice.total == D("6705.00")
