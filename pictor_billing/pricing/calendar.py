"""Billing dates: the monthly anchor in short months, monthly cycles, anniversaries (Feb 29)."""

import calendar
from datetime import date


def anchor_date(year: int, month: int, anchor_day: int) -> date:
    """The anchor date in a month; in short months the last day stands in for 29-31."""
    return date(year, month, min(anchor_day, calendar.monthrange(year, month)[1]))


def shift_month(year: int, month: int, delta: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + delta
    return index // 12, index % 12 + 1


def billing_cycle(today: date, anchor_day: int) -> tuple[date, date]:
    """The monthly cycle containing today: (last anchor date on or before today, next one after)."""
    this_month = anchor_date(today.year, today.month, anchor_day)
    if this_month <= today:
        return this_month, anchor_date(*shift_month(today.year, today.month, 1), anchor_day)
    return anchor_date(*shift_month(today.year, today.month, -1), anchor_day), this_month


def add_years(day: date, years: int) -> date:
    """The same calendar date `years` later; Feb 29 becomes Feb 28 in a common year."""
    target = day.year + years
    return date(target, day.month, min(day.day, calendar.monthrange(target, day.month)[1]))


def day_words(day: date) -> str:
    """A date as lines and messages word it: "Dec 1, 2027"."""
    return f"{day:%b} {day.day}, {day.year}"
