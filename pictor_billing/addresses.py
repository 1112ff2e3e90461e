"""Postal addresses in the one format invoices print for both parties.

The seller's address (settings.SELLER, typed once) reads "1 Market Street / San Francisco, CA 94105 /
United States": street lines, the city line as the country writes it, then the country by name. A
buyer's address is put together from the Billing details fields the same way, so "Bill to" and
"From" read alike: the city line follows the buyer's country ("San Francisco 94105" in the United
States, "10115 Berlin" in Germany), and a country typed as its ISO code ("US", "de") is written out
("United States", "Germany"). A country we have no name for is printed as typed, with the city first.
"""

# ISO 3166-1 alpha-2 codes of the countries our customers are in, by the names invoices print.
COUNTRY_NAMES = {
    "US": "United States", "CA": "Canada", "MX": "Mexico", "BR": "Brazil", "AR": "Argentina", "CL": "Chile",
    "GB": "United Kingdom", "IE": "Ireland", "FR": "France", "DE": "Germany", "AT": "Austria",
    "CH": "Switzerland", "BE": "Belgium", "NL": "Netherlands", "LU": "Luxembourg", "ES": "Spain",
    "PT": "Portugal", "IT": "Italy", "GR": "Greece", "MT": "Malta", "CY": "Cyprus", "DK": "Denmark",
    "SE": "Sweden", "NO": "Norway", "FI": "Finland", "IS": "Iceland", "PL": "Poland", "CZ": "Czechia",
    "SK": "Slovakia", "HU": "Hungary", "RO": "Romania", "BG": "Bulgaria", "HR": "Croatia", "SI": "Slovenia",
    "EE": "Estonia", "LV": "Latvia", "LT": "Lithuania", "AU": "Australia", "NZ": "New Zealand", "JP": "Japan",
    "SG": "Singapore", "IN": "India", "ZA": "South Africa", "AE": "United Arab Emirates", "IL": "Israel",
    "TR": "Türkiye",
}
# What people type for a country besides its code and its name above.
COUNTRY_ALIASES = {
    "usa": "US", "u.s.a.": "US", "u.s.": "US", "united states of america": "US", "uk": "GB",
    "great britain": "GB", "england": "GB", "scotland": "GB", "wales": "GB", "the netherlands": "NL",
    "deutschland": "DE", "czech republic": "CZ", "turkey": "TR",
}
# Countries whose postcode comes before the city ("10115 Berlin"); elsewhere it follows it.
POSTCODE_FIRST = {
    "AR", "AT", "BE", "BG", "BR", "CH", "CL", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IL", "IS", "IT", "LT", "LU", "LV", "MX", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK", "TR",
}
_CODES = {name.casefold(): code for code, name in COUNTRY_NAMES.items()} | COUNTRY_ALIASES


def country_code(typed: str) -> str | None:
    """The ISO code of a country typed as its code, its name or a common alias; None if unknown."""
    typed = typed.strip()
    if typed.upper() in COUNTRY_NAMES:
        return typed.upper()
    return _CODES.get(typed.casefold())


def address_lines(*, line1: str = "", line2: str = "", city: str = "", postal_code: str = "",
                  country: str = "") -> list[str]:
    """The address as printed on an invoice, one string a line, blank parts left out."""
    code = country_code(country)
    city, postal_code = city.strip(), postal_code.strip()
    parts = (postal_code, city) if code in POSTCODE_FIRST else (city, postal_code)
    city_line = " ".join(part for part in parts if part)
    country_line = COUNTRY_NAMES[code] if code else country.strip()
    return [line for line in (line1.strip(), line2.strip(), city_line, country_line) if line]
