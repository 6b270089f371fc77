"""Time cues in questions map to publication-date windows."""

from __future__ import annotations

from datetime import date

import pytest

from articleqa.qa.timecues import time_window

TODAY = date(2020, 3, 18)  # a Wednesday


@pytest.mark.parametrize(
    "question,start,end",
    [
        ("What happened yesterday in Paris?", date(2020, 3, 17), date(2020, 3, 18)),
        ("Who resigned today?", date(2020, 3, 18), date(2020, 3, 18)),
        ("What did the mayor say on Monday?", date(2020, 3, 16), date(2020, 3, 18)),
        ("What happened last Wednesday?", date(2020, 3, 11), date(2020, 3, 13)),
        ("Which team won last week?", date(2020, 3, 9), date(2020, 3, 17)),
        ("What was announced this week?", date(2020, 3, 16), date(2020, 3, 18)),
        ("Who was elected last month?", date(2020, 2, 1), date(2020, 3, 2)),
        ("What happened three days ago?", date(2020, 3, 14), date(2020, 3, 18)),
        ("What has the WHO said recently?", date(2020, 2, 17), date(2020, 3, 18)),
        ("Who won the election in 2019?", date(2019, 1, 1), date(2020, 1, 2)),
        ("What happened in January 2020?", date(2020, 1, 1), date(2020, 2, 2)),
        ("What happened on March 5, 2020?", date(2020, 3, 5), date(2020, 3, 7)),
        ("What happened on 5 March 2020?", date(2020, 3, 5), date(2020, 3, 7)),
        ("What happened on 2019-12-24?", date(2019, 12, 24), date(2019, 12, 26)),
    ],
)
def test_windows(question, start, end):
    window = time_window(question, TODAY)
    assert window is not None, question
    assert (window.start, window.end) == (start, end)


@pytest.mark.parametrize(
    "question",
    ["Who called the meeting a waste of time?", "How many peacekeepers may be deployed?", "Who may attend?"],
)
def test_no_cue_no_window(question):
    assert time_window(question, TODAY) is None


def test_relative_window_never_ends_after_today():
    window = time_window("What happened yesterday?", TODAY)
    assert window.end <= TODAY and window.contains(date(2020, 3, 17)) and not window.contains(None)
