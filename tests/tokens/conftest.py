"""Token test helpers: usage the way devices spend it, and moving an entry to another day."""

import datetime
import uuid

import pytest
from django.test import TestCase
from django.utils import timezone

from billing.usage import usage_record
from tests.helpers import clock_at
from tokens.models import TokenEntry


def spend(account, output_type="ai_image", quantity=1, *, event_id="booth-1", now=None):
    """One usage request, as the device API makes it (and commits: a top-up it queues is bought); its answer."""
    with clock_at(account, now), TestCase.captureOnCommitCallbacks(execute=True):
        result = usage_record(account=account, output_type=output_type, quantity=quantity, event_id=event_id,
                              idempotency_key=uuid.uuid4().hex)
    return result


def move_to_day(entry_id: int, day: datetime.date) -> None:
    """Put an entry on another day (created_at is set by the database, so usage is always "now")."""
    moment = datetime.datetime.combine(day, datetime.time(12, 0), tzinfo=datetime.UTC)
    TokenEntry.objects.filter(pk=entry_id).update(created_at=moment)


@pytest.fixture
def today():
    return timezone.localdate()
