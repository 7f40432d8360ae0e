"""Acquisition dates as non-US Windows PCs write them: read when unambiguous, settled by the file's
own dates or the ``date_order`` setting, otherwise left unread and flagged, never guessed."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.parsers import empower, shimadzu
from worker.parsers.dates import acquisition
from worker.parsers.options import NO_OPTIONS, ParserOptions


@pytest.mark.parametrize(("text", "expected"), [
    ("21.2.2012. 13:16:57", datetime(2012, 2, 21, 13, 16, 57)),  # Croatian: dot after the year
    ("2019/1/7 下午 06:31:27", datetime(2019, 1, 7, 18, 31, 27)),  # Chinese PM marker
    ("2019/1/7 上午 06:31:27", datetime(2019, 1, 7, 6, 31, 27)),
    ("2019/1/7 06:31:27 午後", datetime(2019, 1, 7, 18, 31, 27)),  # Japanese, after the time
    ("2023/5/4 오후 12:05:00", datetime(2023, 5, 4, 12, 5)),  # Korean, noon
    ("21/08/2024 14:02:11", datetime(2024, 8, 21, 14, 2, 11)),  # day > 12: day-first
])
def test_unambiguous_local_layouts_are_read(text: str, expected: datetime) -> None:
    assert acquisition(text) == (expected, None)


def test_the_files_other_dates_settle_the_order() -> None:
    assert acquisition("3/11/2022 13:00:00", others=["21/08/2024 10:00:00"]) == (
        datetime(2022, 11, 3, 13), None)
    assert acquisition("3/11/2022 13:00:00", others=["08/21/2024 10:00:00"]) == (
        datetime(2022, 3, 11, 13), None)


def test_an_open_order_is_flagged_not_guessed_unless_configured() -> None:
    value, why = acquisition("3/11/2022 13:00:00")
    assert value is None and why is not None
    assert "3/11/2022 13:00:00" in why and "date_order" in why
    assert acquisition("3/11/2022 13:00:00", date_order="day-first")[0] == datetime(2022, 11, 3,
                                                                                    13)
    assert acquisition("3/11/2022 13:00:00", date_order="month-first")[0] == datetime(2022, 3,
                                                                                      11, 13)


def _shimadzu(acquired: str, generated: str | None = None) -> bytes:
    lines = ["[Header]", "Application Name\tLabSolutions"]
    if generated:
        lines.append(f"Generated\t{generated}")
    lines += ["", "[Sample Information]", "Sample Name\tS1", f"Acquired\t{acquired}", "",
              "[Peak Table(Detector A)]", "# of Peaks\t0", ""]
    return "\r\n".join(lines).encode("utf-8")


def test_shimadzu_keeps_and_flags_an_unsettled_date() -> None:
    parsed = shimadzu.parse(_shimadzu("3/11/2022 13:16:57"), "x.txt", NO_OPTIONS)
    assert parsed.acquired_at is None
    assert parsed.metadata["Sample Information.Acquired"] == "3/11/2022 13:16:57"
    assert len(parsed.flags) == 1 and "date_order" in parsed.flags[0]
    # The file's own generation date settles it ...
    settled = shimadzu.parse(_shimadzu("3/11/2022 13:16:57", "21/08/2024 09:00:00"), "x.txt",
                             NO_OPTIONS)
    assert settled.acquired_at == datetime(2022, 11, 3, 13, 16, 57) and not settled.flags
    # ... and so does the setting.
    configured = shimadzu.parse(_shimadzu("3/11/2022 13:16:57"), "x.txt",
                                ParserOptions(date_order="month-first"))
    assert configured.acquired_at == datetime(2022, 3, 11, 13, 16, 57)
    dotted = shimadzu.parse(_shimadzu("21.2.2012. 13:16:57"), "x.txt", NO_OPTIONS)
    assert dotted.acquired_at == datetime(2012, 2, 21, 13, 16, 57) and not dotted.flags


def test_empower_reads_a_chinese_pm_date() -> None:
    data = ('"SampleName"\t"S1"\r"System Name"\t"LC-2"\r"Date Acquired"\t"2019/1/7 下午 06:31:27"\r'
            "0\t1\r0.5\t2\r").encode("big5")
    parsed = empower.parse(data, "x.arw", ParserOptions(default_encoding="big5"))
    assert parsed.acquired_at == datetime(2019, 1, 7, 18, 31, 27) and not parsed.flags


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2099, 12, 31)),
       st.sampled_from(["day-first", "month-first"]), st.booleans())
def test_every_layout_round_trips(when: datetime, order: str, dot: bool) -> None:
    when = when.replace(microsecond=0)
    a, b = (when.day, when.month) if order == "day-first" else (when.month, when.day)
    clock = f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}"
    assert acquisition(f"{a}/{b}/{when.year} {clock}", date_order=order) == (when, None)
    dotted = f"{when.day}.{when.month}.{when.year}{'.' if dot else ''} {clock}"
    assert acquisition(dotted) == (when, None)
    marker = "下午" if when.hour >= 12 else "上午"
    twelve = f"{(when.hour % 12) or 12:02d}:{when.minute:02d}:{when.second:02d}"
    assert acquisition(f"{when.year}/{when.month}/{when.day} {marker} {twelve}") == (when, None)
    value, why = acquisition(f"{a}/{b}/{when.year} {clock}")
    assert value in (when, None) and (value is None) == (why is not None)
    if value is None:  # only an order the text itself cannot settle is left open
        assert when.day <= 12 and when.month <= 12 and when.day != when.month


def test_the_files_own_dates_outrank_the_setting() -> None:
    assert acquisition("3/11/2022 13:00:00", others=["08/21/2024 10:00:00"],
                       date_order="day-first")[0] == datetime(2022, 3, 11, 13)
