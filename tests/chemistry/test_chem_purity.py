"""Purity: main-peak rule (ties), derived Area%, mean and RSD (n − 1) per sample."""

from __future__ import annotations

import json
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.chemistry import purity
from worker.chemistry import steps as t
from worker.chemistry.purity import (
    Injection,
    PeakInput,
    injection_purity,
    sample_purity,
    select_main_peak,
    worked_out_once,
)
from worker.parsers.base import Peak

# 12_Report.csv peak table (Area, Area%, RT) as printed.
REPORT_12 = [PeakInput(7.075, 6.3977, 8.1687), PeakInput(7.090, 5.1896, 6.6261),
             PeakInput(7.222, 2.5775, 3.2910), PeakInput(7.643, 56.9860, 72.7608),
             PeakInput(8.751, 7.1690, 9.1535)]


def test_main_peak_of_a_real_report() -> None:
    c = injection_purity(Injection("12_Report.csv", REPORT_12), analyte="AOD9604")
    assert c.value == 72.7608
    assert c.unit == "%" and c.kind == "purity_injection" and c.flags == []
    assert c.inputs["main_peak"] == 4 and c.inputs["main_peak_rt_min"] == 7.643
    considered = c.steps[0]
    assert considered.label == "peaks considered"
    assert [p["rt_min"] for p in considered.inputs["peaks"]] == [p.rt_min for p in REPORT_12]


def test_parser_peaks_are_accepted_as_is() -> None:
    peaks = [Peak(number=i + 1, rt_min=p.rt_min, area=p.area, area_pct=p.area_pct)
             for i, p in enumerate(REPORT_12)]
    assert injection_purity(Injection("x", peaks)).value == 72.7608


def test_tie_goes_to_the_earliest_rt_whatever_the_table_order() -> None:
    peaks = [PeakInput(9.0, 40.0, 40.0), PeakInput(5.0, 40.0, 40.0), PeakInput(7.0, 20.0, 20.0)]
    main = select_main_peak(peaks)
    assert main is not None and main.index == 1 and main.rt_min == 5.0
    assert main.tied_with == (0,)
    c = injection_purity(Injection("x", peaks))
    assert t.MAIN_PEAK_TIE in c.flags
    assert c.steps[-1].inputs["tied_with"] == [1]


def test_tie_on_area_pct_and_rt_goes_to_table_order() -> None:
    peaks = [PeakInput(5.0, 30.0, 30.0), PeakInput(5.0, 30.0, 30.0), PeakInput(1.0, 1.0, 1.0)]
    main = select_main_peak(peaks)
    assert main is not None and main.index == 0


def test_highest_area_pct_not_earliest_peak_wins() -> None:
    peaks = [PeakInput(1.0, 10.0, 10.0), PeakInput(2.0, 90.0, 90.0)]
    assert injection_purity(Injection("x", peaks)).value == 90.0


def test_area_pct_derived_when_not_printed() -> None:
    peaks = [PeakInput(1.0, 25.0), PeakInput(2.0, 75.0), PeakInput(3.0, 100.0)]
    c = injection_purity(Injection("shimadzu", peaks))
    assert c.value == pytest.approx(50.0)
    assert t.AREA_PCT_DERIVED in c.flags
    derived = next(s for s in c.steps if s.label == "Area% derived")
    assert derived.value == 200.0
    assert derived.inputs["derived_for"] == [1, 2, 3]


def test_empty_and_zero_area_injections_have_no_value() -> None:
    c = injection_purity(Injection("empty", []))
    assert c.value is None and c.flags == [t.NO_PEAKS]
    z = injection_purity(Injection("zero", [PeakInput(1.0, 0.0), PeakInput(2.0, 0.0)]))
    assert z.value is None and t.ZERO_TOTAL_AREA in z.flags
    json.dumps(z.to_json(), allow_nan=False)  # no NaN leaks into the trace


def _inj(label: str, pct: float) -> Injection:
    return Injection(label, [PeakInput(7.6, pct, pct), PeakInput(8.0, 100 - pct, 100 - pct)])


def test_mean_and_rsd_use_n_minus_1() -> None:
    values = [98.1, 98.4, 97.9]
    res = sample_purity([_inj(f"Inj_{i + 1}", v) for i, v in enumerate(values)],
                        sample="S1", analyte="AOD9604")
    assert res.purity.value == pytest.approx(statistics.fmean(values))
    expected = statistics.stdev(values) / statistics.fmean(values) * 100
    assert res.rsd.value == pytest.approx(expected, rel=1e-12)
    # and not the population SD
    assert res.rsd.value != pytest.approx(
        statistics.pstdev(values) / statistics.fmean(values) * 100, rel=1e-6)
    assert res.purity.kind == "purity" and res.rsd.kind == "purity_rsd"
    assert res.purity.inputs == {"sample": "S1", "analyte": "AOD9604",
                                 "injections": ["Inj_1", "Inj_2", "Inj_3"]}
    assert res.purity.flags == [] and res.rsd.flags == []


def test_rsd_undefined_for_one_injection() -> None:
    res = sample_purity([_inj("Inj_1", 99.0)], sample="S1")
    assert res.purity.value == 99.0
    assert res.rsd.value is None and t.RSD_UNDEFINED in res.rsd.flags
    assert t.RSD_UNDEFINED not in res.purity.flags


def test_injections_are_in_natural_order() -> None:
    labels = ["Inj_10", "Inj_2", "Inj_1"]
    res = sample_purity([_inj(lbl, 99.0) for lbl in labels], sample="S")
    assert [c.inputs["injection"] for c in res.injections] == ["Inj_1", "Inj_2", "Inj_10"]
    assert list(res.main_peaks) == ["Inj_1", "Inj_2", "Inj_10"]


def test_injection_without_peaks_is_listed_and_flagged_not_averaged() -> None:
    res = sample_purity([_inj("Inj_1", 98.0), Injection("Inj_2", []), _inj("Inj_3", 99.0)],
                        sample="S")
    assert res.purity.value == pytest.approx(98.5)
    assert t.INJECTION_WITHOUT_VALUE in res.purity.flags
    mean_step = res.purity.steps[-1]
    assert mean_step.inputs["without_value"] == ["Inj_2"]
    assert mean_step.inputs["used"] == ["Inj_1", "Inj_3"]
    none = sample_purity([Injection("Inj_1", [])], sample="S")
    assert none.purity.value is None and t.NO_VALUE in none.purity.flags
    assert none.rsd.value is None


def test_non_finite_peak_is_refused() -> None:
    with pytest.raises(t.ChemistryError):
        injection_purity(Injection("x", [PeakInput(float("inf"), 1.0)]))


_peak = st.builds(PeakInput, st.floats(0, 30), st.floats(0, 1e4),
                  st.none() | st.floats(0, 100))


@given(st.lists(st.lists(_peak, max_size=6), min_size=1, max_size=4))
def test_worked_out_once_gives_what_working_out_each_time_gives(
        tables: list[list[PeakInput]]) -> None:
    """Inside ``worked_out_once`` a table's purity and main peak are the same as outside,
    asked in either order, however often."""
    injections = [Injection(f"Inj_{n + 1}", peaks) for n, peaks in enumerate(tables)]
    alone = (sample_purity(injections, sample="S"), [select_main_peak(p) for p in tables])
    with worked_out_once():
        mains = [select_main_peak(p) for p in tables]
        found = sample_purity(injections, sample="S")
        again = sample_purity(injections, sample="S")
        copies = [select_main_peak(list(p)) for p in tables]  # other objects, same values
    assert (found, mains) == alone and again == found and copies == mains


def test_a_table_is_worked_out_once_inside(monkeypatch: pytest.MonkeyPatch) -> None:
    worked: list[int] = []
    area_pcts = purity._area_pcts

    def counted(peaks: list[PeakInput]) -> tuple[list[float], list[bool], float]:
        worked.append(id(peaks))
        return area_pcts(peaks)

    monkeypatch.setattr(purity, "_area_pcts", counted)
    table = list(REPORT_12)
    with worked_out_once():
        sample_purity([Injection("Inj_1", table)], sample="12")
        assert select_main_peak(table) == select_main_peak(table)
    assert worked == [id(table)]
    select_main_peak(table)  # outside: worked out again
    assert len(worked) == 2
