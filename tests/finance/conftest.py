import pytest

from tests.conftest import logged_in
from tests.finance.helpers import finance_user_make


@pytest.fixture
def finance_user(db):
    return finance_user_make()


@pytest.fixture
def finance_client(finance_user):
    return logged_in(finance_user)


@pytest.fixture(autouse=True)
def pdf_cache(settings, tmp_path):
    """Each test caches its PDFs in a folder of its own."""
    settings.FINANCE_PDF_CACHE = str(tmp_path / "pdf-cache")
    return tmp_path / "pdf-cache"
