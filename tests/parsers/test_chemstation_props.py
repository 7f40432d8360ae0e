"""Property tests for the ChemStation parsers.

(a) Whatever the bytes — random, or a real export damaged at random — a parser returns a valid
    ``ParsedFile`` or raises ``ParseError``; nothing else escapes, so the worker can always record
    a reason. (b) Peak tables generated at random and rendered in ChemStation's own layouts come
    back with no row lost and no value changed.

``ACCU_FUZZ_EXAMPLES`` sets the number of examples per property (default 200); a long run uses
10000.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_chemstation import CSV_SET, GC_RUN, LC_RUN, chemstation_file

from worker.parsers import chemstation_csv, chemstation_txt
from worker.parsers.base import ParsedFile, ParseError
from worker.parsers.options import NO_OPTIONS

FUZZ = settings(
    max_examples=int(os.environ.get("ACCU_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PARSERS = (chemstation_txt, chemstation_csv)


def parsed_or_rejected(parser: ModuleType, data: bytes, filename: str) -> ParsedFile | None:
    """Run sniff and parse; only a valid model or a ParseError with a reason may come out."""
    assert 0 <= parser.sniff(data, filename, NO_OPTIONS) <= 100
    try:
        result = parser.parse(data, filename, NO_OPTIONS)
    except ParseError as error:
        assert error.reason
        return None
    assert isinstance(result, ParsedFile)
    return result


# --- (a) only ParseError escapes ------------------------------------------------------------

@FUZZ
@given(data=st.binary(max_size=4096), name=st.sampled_from(["Report.TXT", *CSV_SET, "x"]))
def test_arbitrary_bytes(data: bytes, name: str) -> None:
    for parser in PARSERS:
        parsed_or_rejected(parser, data, name)


@FUZZ
@given(text=st.text(max_size=2000), name=st.sampled_from(["Report.TXT", "REPORT01.CSV"]))
def test_arbitrary_utf16_text(text: str, name: str) -> None:
    # Past the BOM check, so the parsers' own reading is what gets exercised.
    data = ("\ufeff" + text).encode("utf-16-le", errors="surrogatepass")
    for parser in PARSERS:
        parsed_or_rejected(parser, data, name)


@pytest.fixture(scope="module")
def real_files() -> dict[str, bytes]:
    files = {f"{GC_RUN}/{name}": chemstation_file(GC_RUN, name) for name in CSV_SET}
    files[f"{GC_RUN}/Report.TXT"] = chemstation_file(GC_RUN, "Report.TXT")
    files[f"{LC_RUN}/Report.TXT"] = chemstation_file(LC_RUN, "Report.TXT")
    return files


_BYTE_MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(min_value=0), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(min_value=0), st.just(0)),
    st.tuples(st.just("delete"), st.integers(min_value=0), st.integers(1, 64)),
    st.tuples(st.just("insert"), st.integers(min_value=0), st.binary(min_size=1, max_size=16)),
)
_LINE_MUTATION = st.one_of(
    st.tuples(st.just("drop"), st.integers(min_value=0), st.just("")),
    st.tuples(st.just("repeat"), st.integers(min_value=0), st.just("")),
    st.tuples(st.just("replace"), st.integers(min_value=0), st.text(max_size=80)),
    st.tuples(st.just("char"), st.integers(min_value=0), st.text(min_size=1, max_size=3)),
)


def mutate_bytes(data: bytes, mutations: list[tuple[str, int, object]]) -> bytes:
    buffer = bytearray(data)
    for kind, where, what in mutations:
        at = where % (len(buffer) + 1)
        if kind == "flip" and buffer:
            buffer[at % len(buffer)] = int(what)  # type: ignore[call-overload]
        elif kind == "cut":
            del buffer[at:]
        elif kind == "delete":
            del buffer[at: at + int(what)]  # type: ignore[call-overload]
        elif kind == "insert":
            buffer[at:at] = what  # type: ignore[index]
    return bytes(buffer)


def mutate_lines(data: bytes, mutations: list[tuple[str, int, str]]) -> bytes:
    """Damage that keeps the encoding valid, so it reaches the table reading itself."""
    lines = data.decode("utf-16").split("\r\n")
    for kind, where, what in mutations:
        at = where % len(lines)
        if kind == "drop" and len(lines) > 1:
            del lines[at]
        elif kind == "repeat":
            lines.insert(at, lines[at])
        elif kind == "replace":
            lines[at] = what
        elif kind == "char" and lines[at]:
            column = where % len(lines[at])
            lines[at] = lines[at][:column] + what + lines[at][column + 1:]
    return ("\ufeff" + "\r\n".join(lines)).encode("utf-16-le", errors="surrogatepass")


@FUZZ
@given(data=st.data())
def test_damaged_real_files(real_files: dict[str, bytes], data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(sorted(real_files)))
    name = path.rsplit("/", 1)[-1]
    if data.draw(st.booleans()):
        mutations = data.draw(st.lists(_BYTE_MUTATION, min_size=1, max_size=4))
        damaged = mutate_bytes(real_files[path], mutations)
    else:
        damaged = mutate_lines(real_files[path], data.draw(st.lists(_LINE_MUTATION, min_size=1,
                                                                    max_size=4)))
    for parser in PARSERS:
        parsed_or_rejected(parser, damaged, name)
    if path.startswith(GC_RUN) and name in CSV_SET:
        files = {p.rsplit("/", 1)[-1]: real_files[p] for p in real_files if p.startswith(GC_RUN)}
        files[name] = damaged
        try:
            assert isinstance(chemstation_csv.parse_set(files, NO_OPTIONS), ParsedFile)
        except ParseError as error:
            assert error.reason


def test_damage_to_a_row_never_passes_silently(real_files: dict[str, bytes]) -> None:
    """Every single-line drop in the peak tables is caught (a property over all lines)."""
    report = real_files[f"{LC_RUN}/Report.TXT"]
    lines = report.decode("utf-16").split("\r\n")
    for index in range(28, 41):  # the rule, the 12 rows and the Totals line
        damaged = ("\ufeff" + "\r\n".join(lines[:index] + lines[index + 1:])).encode("utf-16-le")
        with pytest.raises(ParseError):
            chemstation_txt.parse(damaged, "Report.TXT", NO_OPTIONS)


# --- (b) generated tables round-trip ---------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One generated peak, already as the text ChemStation would print in each column."""

    rt: str
    peak_type: str
    width: str
    area: str
    height: str
    area_pct: str
    share: Decimal  # the unrounded Area%, which the CSV export writes to 15 digits


SIGNALS = {  # description as printed -> (name, detector, wavelength)
    "FID1 A, ": ("FID1 A", "FID1 A", None),
    "TCD2 B, ": ("TCD2 B", "TCD2 B", None),
    "DAD1 A, Sig=210,4 Ref=360,100": ("DAD1 A, Sig=210,4 Ref=360,100", "DAD1 A", 210.0),
    "DAD1 B, Sig=254.5,8 Ref=off": ("DAD1 B, Sig=254.5,8 Ref=off", "DAD1 B", 254.5),
}
RULE = "----|-------|----|-------|----------|----------|--------|"


def printed(value: Decimal, decimals: int, width: int) -> str:
    """ChemStation's number layout: fixed decimals, or ``4.57137e4`` when that is too wide."""
    text = f"{value:.{decimals}f}"
    digits = decimals
    while len(text) > width:
        mantissa, exponent = f"{value:.{digits}e}".split("e")
        text = f"{mantissa}e{int(exponent)} "
        digits -= 1
    return text


def decimal(low: str, high: str, places: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=Decimal(low), max_value=Decimal(high), places=places,
                       allow_nan=False, allow_infinity=False)


@st.composite
def tables(draw: st.DrawFn) -> list[Row]:
    count = draw(st.integers(1, 40))
    areas = draw(st.lists(decimal("0.001", "9e9", 5), min_size=count, max_size=count))
    total = sum(Decimal(printed(a, 5, 10)) for a in areas)
    table = []
    for area in areas:
        share = Decimal(printed(area, 5, 10)) * 100 / total
        table.append(Row(
            rt=printed(draw(decimal("0", "999.999", 3)), 3, 7),
            peak_type=draw(st.sampled_from(["BB", "BV", "VB", "VV", "BB S", "BV R", "MM", "PB T",
                                            "F", ""])),
            width=printed(draw(decimal("0", "99.9999", 4)), 4, 7),
            area=printed(area, 5, 10),
            height=printed(draw(decimal("0", "9e9", 5)), 5, 10),
            area_pct=printed(share, draw(st.sampled_from([4, 5])), 8),
            share=share,
        ))
    return table


def render_table(number: int, description: str, table: list[Row]) -> list[str]:
    total_area = sum(Decimal(r.area) for r in table)
    total_height = sum(Decimal(r.height) for r in table)
    lines = [f"Signal {number}: {description}", "",
             "Peak RetTime Type  Width     Area      Height     Area  ",
             "  #   [min]        [min]   [pA*s]      [pA]         %", RULE]
    lines += [f"{i:>4} {r.rt:>7} {r.peak_type:<4} {r.width:>7} {r.area:>10} {r.height:>10} "
              f"{r.area_pct:>8}" for i, r in enumerate(table, start=1)]
    lines.append(f"Totals :{'':18}{printed(total_area, 5, 10):>10} "
                 f"{printed(total_height, 5, 10):>10}")
    return [*lines, "", ""]


@dataclass(frozen=True)
class Facts:
    sample: str
    operator: str
    instrument: str
    injected: datetime
    injection: int
    vial: int


_WORDS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz0123456789-_.", min_size=1,
                 max_size=12)
_VALUE = st.lists(_WORDS, min_size=1, max_size=3).map(" ".join)
FACTS = st.builds(Facts, sample=_VALUE, operator=_VALUE, instrument=_VALUE,
                  injected=st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)).map(
                      lambda d: d.replace(microsecond=0)),
                  injection=st.integers(1, 99), vial=st.integers(1, 120))


def us_date(moment: datetime) -> str:
    hour = moment.hour % 12 or 12
    half = "AM" if moment.hour < 12 else "PM"
    return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment:%M:%S} {half}"


def render_report(facts: Facts, signals: list[tuple[str, list[Row]]], summed: bool) -> bytes:
    rule = "=" * 69
    lines = [f"Data File C:\\Chem32\\1\\Data\\{facts.sample}.D", f"Sample Name: {facts.sample}",
             f"{facts.instrument} {us_date(facts.injected)} {facts.operator}", "", rule,
             f"{'Acq. Operator   : ' + facts.operator:<47}  {'Seq. Line':>10} :   1",
             f"{'Acq. Instrument : ' + facts.instrument:<47}  {'Location':>10} : Vial {facts.vial}",
             f"{'Injection Date  : ' + us_date(facts.injected):<47}  {'Inj':>10} :"
             f"{facts.injection:>4}",
             f"{'':<47}  {'Inj Volume':>10} : 2 µl",
             "Method          : C:\\Chem32\\1\\Methods\\A-VERY-LONG-METHOD-NAME-THAT-WRA",
             "                  PS.M (Sequence Method)", rule,
             f"{'Area Percent Report':^69}", rule, "",
             "Sorted By             :      Signal", "Multiplier            :      1.0000", ""]
    for number, (description, table) in enumerate(signals, start=1):
        lines += render_table(number, description, table)
    if summed:
        lines += [rule, f"{'Summed Peaks Report':^69}", rule, ""]
        lines += [f"Signal {n}: {d}" for n, (d, _) in enumerate(signals, start=1)]
    else:
        lines.append(rule)
    lines += [f"{'*** End of Report ***':>47}", ""]
    return ("\ufeff" + "\r\n".join(lines)).encode("utf-16-le")


@FUZZ
@given(facts=FACTS, signals=st.lists(st.tuples(st.sampled_from(sorted(SIGNALS)), tables()),
                                     min_size=1, max_size=3), summed=st.booleans())
def test_generated_report_round_trips(facts: Facts, signals: list[tuple[str, list[Row]]],
                                      summed: bool) -> None:
    parsed = chemstation_txt.parse(render_report(facts, signals, summed), "Report.TXT", NO_OPTIONS)
    assert (parsed.sample_name, parsed.operator, parsed.instrument) == (
        facts.sample, facts.operator, facts.instrument)
    assert (parsed.acquired_at, parsed.injection, parsed.vial) == (
        facts.injected, facts.injection, str(facts.vial))
    assert parsed.method == "C:\\Chem32\\1\\Methods\\A-VERY-LONG-METHOD-NAME-THAT-WRAPS.M"
    assert len(parsed.signals) == len(signals)
    for signal, (description, table) in zip(parsed.signals, signals, strict=True):
        assert (signal.name, signal.detector, signal.wavelength_nm) == SIGNALS[description]
        assert signal.peaks is not None and len(signal.peaks) == len(table)
        for number, (peak, row) in enumerate(zip(signal.peaks, table, strict=True), start=1):
            assert peak.number == number
            assert peak.rt_min == float(row.rt)
            assert peak.peak_type == (row.peak_type or None)
            assert peak.width_min == float(row.width)
            assert peak.area == float(row.area)
            assert peak.height == float(row.height)
            assert peak.area_pct == float(row.area_pct)


def render_csv(lines: list[str]) -> bytes:
    return ("\ufeff" + "".join(f"{line}\r\n" for line in lines)).encode("utf-16-le")


@FUZZ
@given(signals=st.lists(st.tuples(st.sampled_from(sorted(SIGNALS)), tables()), min_size=1,
                        max_size=3))
def test_generated_csv_set_round_trips(signals: list[tuple[str, list[Row]]]) -> None:
    header = ['"Sample Name","S-1",""', f'"Number of Signals",{len(signals)},""']
    header += [f'"Signal {n}","{d}",""' for n, (d, _) in enumerate(signals, start=1)]
    header += ['"Number of Columns",7,""', '"Column 1","Peak Number",""',
               '"Column 2","Retention Time","min"', '"Column 3","Peak Type",""',
               '"Column 4","Peak Width","min"', '"Column 5","  Area  ","         "',
               '"Column 6","Height","         "', '"Column 7","  Area   %",""']
    files = {"Report00.CSV": render_csv(header)}
    for n, (_, table) in enumerate(signals, start=1):
        files[f"REPORT{n:02d}.CSV"] = render_csv([
            f'{i},{r.rt},"{r.peak_type:<4}",{r.width},{r.area.strip()},{r.height.strip()},'
            f'{r.share:.15g}' for i, r in enumerate(table, start=1)])
    parsed = chemstation_csv.parse_set(files, NO_OPTIONS)
    for signal, (description, table) in zip(parsed.signals, signals, strict=True):
        assert signal.name == SIGNALS[description][0]
        assert signal.peaks is not None
        assert [(p.rt_min, p.peak_type, p.area, p.area_pct) for p in signal.peaks] == [
            (float(r.rt), r.peak_type or None, float(r.area), float(f"{r.share:.15g}"))
            for r in table]
