"""Time in questions: "yesterday", "last month", "on Monday", "in 2019", "March 5, 2020".

News is about time. A question with a time cue prefers articles published in the window the
cue names, counted back from "today" (the day the question is asked, or a given date). The
window is for publication dates, so it runs from the start of the event window to a couple
of days after it: a report on Monday's event is often published on Tuesday.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
MONTHS.pop("may", None)  # re-added below as a full name only: "may" is also a verb
MONTHS["may"] = 5
WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
REPORTING_LAG = timedelta(days=2)

_MONTH = r"(january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\.?"
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_MONTH_DAY_YEAR = re.compile(rf"\b{_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I)
_DAY_MONTH_YEAR = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+(\d{{4}})\b", re.I)
_MONTH_YEAR = re.compile(rf"\b{_MONTH}\s+(?:of\s+)?(\d{{4}})\b", re.I)
_YEAR = re.compile(r"\b(?:in|during|of|since|from)\s+((?:19|20)\d{2})\b|\b((?:19|20)\d{2})(?:'s)?\b", re.I)
_WEEKDAY = re.compile(r"\b(?:on|last|this past)\s+(monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b", re.I)
_AGO = re.compile(r"\b(\d+|a|one|two|three|four|five|six|seven)\s+(day|week|month|year)s?\s+ago\b", re.I)
_NUMBER_WORDS = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}


@dataclass(frozen=True)
class DateWindow:
    """Inclusive range of publication dates the question points at."""

    start: date
    end: date
    cue: str

    def contains(self, day: date | None) -> bool:
        return day is not None and self.start <= day <= self.end


def time_window(question: str, today: date) -> DateWindow | None:
    """The publication-date window a question's time cue names, or None without a cue.

    Args:
        question: The user's question.
        today: The day the question is asked; relative cues count back from it.

    Returns:
        The window (clipped so it never ends after `today` for relative cues), or None.
    """
    q = question.lower()
    explicit = _explicit_window(q)
    if explicit:
        return explicit
    relative = _relative_window(q, today)
    if relative is None:
        return None
    start, end, cue = relative
    return DateWindow(start, min(end + REPORTING_LAG, today), cue)


def _explicit_window(q: str) -> DateWindow | None:
    for pattern, order in ((_ISO, "ymd"), (_MONTH_DAY_YEAR, "mdy"), (_DAY_MONTH_YEAR, "dmy")):
        m = pattern.search(q)
        if not m:
            continue
        parts = dict(zip(order, m.groups()))
        try:
            month = int(parts["m"]) if parts["m"].isdigit() else MONTHS[parts["m"].rstrip(".")]
            day = date(int(parts["y"]), month, int(parts["d"]))
        except (KeyError, ValueError):
            continue
        return DateWindow(day, day + REPORTING_LAG, m.group(0))
    m = _MONTH_YEAR.search(q)
    if m:
        month, year = MONTHS[m.group(1).rstrip(".")], int(m.group(2))
        last = calendar.monthrange(year, month)[1]
        return DateWindow(date(year, month, 1), date(year, month, last) + REPORTING_LAG, m.group(0))
    m = _YEAR.search(q)
    if m:
        year = int(m.group(1) or m.group(2))
        return DateWindow(date(year, 1, 1), date(year, 12, 31) + REPORTING_LAG, m.group(0))
    return None


def _relative_window(q: str, today: date) -> tuple[date, date, str] | None:
    if re.search(r"\btoday\b|\btonight\b|\bthis morning\b", q):
        return today, today, "today"
    if "yesterday" in q:
        day = today - timedelta(days=1)
        return day, day, "yesterday"
    m = _WEEKDAY.search(q)
    if m:
        back = (today.weekday() - WEEKDAYS[m.group(1).lower()]) % 7 or 7
        day = today - timedelta(days=back)
        return day, day, m.group(0)
    m = _AGO.search(q)
    if m:
        n = int(m.group(1)) if m.group(1).isdigit() else _NUMBER_WORDS[m.group(1).lower()]
        unit = {"day": 1, "week": 7, "month": 30, "year": 365}[m.group(2).lower()]
        center = today - timedelta(days=n * unit)
        slack = timedelta(days=max(1, unit // 2))
        return center - slack, center + slack, m.group(0)
    if "this week" in q or "earlier this week" in q:
        return today - timedelta(days=today.weekday()), today, "this week"
    if "last week" in q or "past week" in q:
        start = today - timedelta(days=today.weekday() + 7)
        return start, start + timedelta(days=6), "last week"
    if "this month" in q:
        return today.replace(day=1), today, "this month"
    if "last month" in q or "past month" in q:
        end = today.replace(day=1) - timedelta(days=1)
        return end.replace(day=1), end, "last month"
    if "this year" in q:
        return today.replace(month=1, day=1), today, "this year"
    if "last year" in q:
        year = today.year - 1
        return date(year, 1, 1), date(year, 12, 31), "last year"
    if re.search(r"\b(recently|lately|latest|recent|these days|this past)\b", q):
        return today - timedelta(days=30), today, "recently"
    return None
