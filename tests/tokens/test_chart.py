"""The usage chart's figures and geometry, built from real ledger entries."""

import datetime

import pytest

from tests.tokens.conftest import move_to_day, spend
from tokens.chart import BOTTOM, LEFT, RIGHT, TOP, nice_ceiling, short_number, usage_chart
from tokens.services import tokens_adjust

D = datetime.date


@pytest.mark.parametrize(("value", "ceiling"), [(0, 4), (1, 4), (4, 4), (5, 8), (9, 20), (37, 40), (41, 80),
                                                (199, 200), (201, 400), (12_345, 20_000)])
def test_the_scale_rounds_up_to_four_even_steps(value, ceiling):
    assert nice_ceiling(value) == ceiling


@pytest.mark.parametrize(("value", "label"), [(7, "7"), (999, "999"), (1000, "1k"), (1250, "1.3k"),
                                              (9999, "10k"), (25_000, "25k"), (2_500_000, "2.5M")])
def test_bar_totals_are_short_enough_to_fit(value, label):
    assert short_number(value) == label


@pytest.fixture
def account(alice):
    tokens_adjust(account=alice.account, amount=10_000, reason="For the chart", user=None)
    return alice.account


def test_it_stacks_each_days_usage_by_output_type(account):
    today = D(2026, 3, 30)
    for output_type, quantity, day in [("ai_image", 20, today), ("ai_video", 2, today), ("ai_image", 5, D(2026, 3, 1)),
                                       ("ai_image", 1, D(2026, 2, 28))]:
        move_to_day(spend(account, output_type, quantity).body["entry_id"], day)

    chart = usage_chart(account, today=today)

    assert (chart.first_day, chart.last_day) == (D(2026, 3, 1), today)
    assert chart.total == 45  # Feb 28 is outside the 30 days
    assert [(s.output_type, s.total) for s in chart.series] == [("ai_video", 20), ("ai_image", 25)]
    assert [(row.day, row.cells, row.total) for row in chart.rows] == [
        (D(2026, 3, 1), (0, 5), 5), (today, (20, 20), 40)]
    assert chart.busiest.day == today
    # Scale: the busiest day is 40 tokens, so the axis runs 0-40 in steps of 10.
    assert [tick.value for tick in chart.ticks] == [0, 10, 20, 30, 40]
    last = chart.bars[-1]
    assert (last.day, last.total, last.label) == (today, 40, "40")
    video, image = last.segments
    assert (video.output_type, video.tokens, image.output_type, image.tokens) == ("ai_video", 20, "ai_image", 20)
    # Stacked from the baseline to the top of the plot, each half of it.
    assert video.y + video.height == pytest.approx(BOTTOM, abs=0.1)
    assert video.height == pytest.approx((BOTTOM - TOP) / 2, abs=0.1)
    assert image.y == pytest.approx(TOP, abs=0.1)
    # The last day's bar sits in the last of 30 slots, the first day's in the first.
    assert RIGHT - (RIGHT - LEFT) / 30 < last.segments[0].x < RIGHT
    assert LEFT < chart.bars[0].segments[0].x < LEFT + (RIGHT - LEFT) / 30
    assert chart.description.startswith("Stacked bars of tokens used each day from Mar 1 to Mar 30")
    assert "45 tokens in all: AI video 20, AI image 25. Busiest day: Mar 30, 40 tokens." in chart.description


def test_an_account_without_usage_has_an_empty_chart(account, charlie):
    spend(account, "ai_image", 3)
    chart = usage_chart(charlie.account)
    assert chart.empty and chart.bars == () and chart.series == ()
    assert chart.description.startswith("No tokens were used from")


def test_the_chart_is_one_query(account, django_assert_num_queries):
    for day in range(10):
        move_to_day(spend(account, "ai_video", 1).body["entry_id"], D.today() - datetime.timedelta(days=day))
    with django_assert_num_queries(1):
        chart = usage_chart(account)
    assert chart.total == 100
