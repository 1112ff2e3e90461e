"""The Token activity chart: tokens used per day over the last 30 days, by output type.

One aggregated query gives the figures; this module turns them into SVG geometry (stacked bars,
gridlines, labels) and the template draws it, with no chart library and no JavaScript. Each output
type has its own fill pattern as well as its colour, bars carry their totals as text, and the
template adds a visually hidden table of the same figures, so the chart reads without colour.
"""

import datetime
from dataclasses import dataclass

from django.db.models import Sum
from django.db.models.functions import TruncDate

from pictor_billing import clock
from tokens.models import OUTPUT_TYPES, TokenEntry

DAYS = 30
WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 712, 20, 212  # the plot area inside the viewBox
LABELS = dict(OUTPUT_TYPES)
# Stacking order, bottom first: the token-heavy types at the base.
ORDER = ["ai_video", "ai_image", "video_capture", "gif", "photo"]


@dataclass(frozen=True)
class Segment:
    """One output type's part of a day's bar."""

    output_type: str
    label: str
    tokens: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Bar:
    day: datetime.date
    total: int
    label: str  # the total, short enough to fit above the bar ("1.2k")
    segments: tuple[Segment, ...]
    label_x: float  # where the total is written, above the bar
    label_y: float


@dataclass(frozen=True)
class Series:
    """An output type that was used in the period: legend entry and table column."""

    output_type: str
    label: str
    total: int


@dataclass(frozen=True)
class Tick:
    value: int
    y: float


@dataclass(frozen=True)
class DayLabel:
    day: datetime.date
    x: float


@dataclass(frozen=True)
class TableRow:
    day: datetime.date
    cells: tuple[int, ...]  # tokens per series, in the order of `series`
    total: int


@dataclass(frozen=True)
class UsageChart:
    first_day: datetime.date
    last_day: datetime.date
    total: int
    series: tuple[Series, ...]
    bars: tuple[Bar, ...]  # days with usage only
    ticks: tuple[Tick, ...]
    day_labels: tuple[DayLabel, ...]
    rows: tuple[TableRow, ...]  # days with usage, oldest first
    busiest: TableRow | None
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = RIGHT
    top: int = TOP
    bottom: int = BOTTOM

    @property
    def empty(self) -> bool:
        return self.total == 0

    @property
    def description(self) -> str:
        """The chart in one paragraph, for its <desc>."""
        if self.empty:
            return f"No tokens were used from {_day(self.first_day)} to {_day(self.last_day)}."
        parts = ", ".join(f"{s.label} {s.total:,}" for s in self.series)
        busiest = self.busiest
        return (f"Stacked bars of tokens used each day from {_day(self.first_day)} to {_day(self.last_day)}, "
                f"one pattern per output type. {self.total:,} tokens in all: {parts}. Busiest day: "
                f"{_day(busiest.day)}, {busiest.total:,} tokens. The table after the chart lists every day with usage.")


def _day(day: datetime.date) -> str:
    return f"{day:%b} {day.day}"


def short_number(value: int) -> str:
    """1234 → "1.2k", 25000 → "25k": a bar's total in the width of a bar."""
    if value < 1000:
        return str(value)
    if value < 9_950:
        return _tenths((value + 50) // 100) + "k"  # whole-number half-up rounding, no float
    if value < 999_500:
        return f"{(value + 500) // 1000}k"
    return _tenths((value + 50_000) // 100_000) + "M"


def _tenths(tenths: int) -> str:
    whole, tenth = divmod(tenths, 10)
    return f"{whole}.{tenth}" if tenth else str(whole)


def usage_by_day(account, first_day: datetime.date, last_day: datetime.date) -> dict[tuple[datetime.date, str], int]:
    """Tokens used per (day, output type) between the two dates, inclusive: one GROUP BY query."""
    tz = datetime.UTC  # billing dates are UTC dates
    start = datetime.datetime.combine(first_day, datetime.time.min, tzinfo=tz)
    end = datetime.datetime.combine(last_day + datetime.timedelta(days=1), datetime.time.min, tzinfo=tz)
    rows = (TokenEntry.objects.filter(account=account, kind=TokenEntry.USAGE, created_at__gte=start,
                                      created_at__lt=end)
            .annotate(day=TruncDate("created_at", tzinfo=tz)).values("day", "output_type")
            .annotate(spent=Sum("amount")).order_by())
    return {(row["day"], row["output_type"]): -row["spent"] for row in rows if row["spent"]}


def nice_ceiling(value: int, steps: int = 4) -> int:
    """The smallest 1-2-5 × 10ⁿ step, times `steps`, that reaches `value` (whole tokens, at least `steps`)."""
    step = 1
    while step * steps < value:
        for factor in (2, 2.5, 2):  # 1 → 2 → 5 → 10 → 20 → 50 …
            step = int(step * factor)
            if step * steps >= value:
                break
    return step * steps


def usage_chart(account, today: datetime.date | None = None) -> UsageChart:
    """The chart of the 30 days ending today (the account's clock, UTC dates)."""
    today = today or clock.today(account)
    first_day = today - datetime.timedelta(days=DAYS - 1)
    used = usage_by_day(account, first_day, today)
    types = [t for t in ORDER if any(kind == t for _, kind in used)]
    series = tuple(Series(t, LABELS.get(t, t), sum(v for (_, kind), v in used.items() if kind == t)) for t in types)
    days = [first_day + datetime.timedelta(days=i) for i in range(DAYS)]
    per_day = {day: sum(used.get((day, t), 0) for t in types) for day in days}
    top_value = nice_ceiling(max(per_day.values(), default=0))
    scale = (BOTTOM - TOP) / top_value
    slot = (RIGHT - LEFT) / DAYS
    bar_width = round(slot * 0.7, 1)

    bars, rows = [], []
    for index, day in enumerate(days):
        if not per_day[day]:
            continue
        x = round(LEFT + index * slot + (slot - bar_width) / 2, 1)
        y = float(BOTTOM)
        segments = []
        for t in types:
            tokens = used.get((day, t), 0)
            if tokens:
                height = tokens * scale
                y -= height
                segments.append(Segment(t, LABELS.get(t, t), tokens, x, round(y, 1), bar_width, round(height, 1)))
        bars.append(Bar(day, per_day[day], short_number(per_day[day]), tuple(segments), round(x + bar_width / 2, 1),
                        round(y - 4, 1)))
        rows.append(TableRow(day, tuple(used.get((day, t), 0) for t in types), per_day[day]))

    ticks = tuple(Tick(top_value * i // 4, round(BOTTOM - top_value * i / 4 * scale, 1)) for i in range(5))
    day_labels = tuple(DayLabel(days[i], round(LEFT + i * slot + slot / 2, 1)) for i in (0, 7, 14, 21, DAYS - 1))
    return UsageChart(
        first_day=first_day, last_day=today, total=sum(per_day.values()), series=series, bars=tuple(bars),
        ticks=ticks, day_labels=day_labels, rows=tuple(rows),
        busiest=max(rows, key=lambda row: (row.total, row.day), default=None),
    )
