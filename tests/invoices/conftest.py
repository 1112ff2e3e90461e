import pytest


@pytest.fixture(autouse=True)
def pdf_cache(settings, tmp_path):
    """Each test caches its PDFs in a folder of its own (a test database reuses numbers and ids)."""
    settings.FINANCE_PDF_CACHE = str(tmp_path / "pdf-cache")
    return tmp_path / "pdf-cache"
