"""Calibration fit: the real AOD9604 standards, an independent fit, flags, corrections."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from worker.chemistry import steps as t
from worker.chemistry.calibration import Standard, fit_calibration, linear_fit

# Main-peak Area and RT of the five *_Report.csv standards (corpus README, printed values).
CORPUS = [(12, 56.9860, 7.643), (25, 107.7670, 7.633), (50, 214.6817, 7.631),
          (100, 411.4072, 7.624), (250, 1021.4570, 7.603)]


def corpus_standards() -> list[Standard]:
    return [Standard(label=f"{lvl}_Report.csv", level=lvl, area=a, rt_min=rt)
            for lvl, a, rt in CORPUS]


def test_corpus_fit_reproduces_the_quoted_digits() -> None:
    curve = fit_calibration(corpus_standards())
    assert f"{curve.slope:.4f}" == "4.0511"
    assert f"{curve.intercept:.4f}" == "8.3907"
    assert f"{curve.r2:.5f}" == "0.99996"
    assert curve.flags == []
    assert curve.distinct_levels == 5
    assert curve.computation.kind == "calibration"
    assert curve.computation.value == curve.slope
    assert curve.computation.calc_version.startswith("calibration/")
    assert curve.mean_rt_min == pytest.approx(7.6268, abs=1e-12)


def test_corpus_fit_with_12_corrected_to_12_5() -> None:
    curve = fit_calibration(corpus_standards(), corrections={12: 12.5})
    assert f"{curve.slope:.4f}" == "4.0552"
    assert f"{curve.intercept:.4f}" == "7.6312"
    assert f"{curve.r2:.5f}" == "0.99996"
    assert curve.flags == [t.LEVEL_CORRECTED]
    p12 = curve.points[0]
    assert (p12.nominal_level, p12.level) == (12, 12.5)
    labels = [s.label for s in curve.computation.steps]
    assert "level corrections (configuration)" in labels
    step = next(s for s in curve.computation.steps if s.label.startswith("level corrections"))
    assert step.value == {"12": 12.5}


@pytest.mark.parametrize("corrections", [None, {12: 12.5}])
def test_fit_matches_stdlib_statistics(corrections: dict[float, float] | None) -> None:
    """statistics.linear_regression / correlation: an independent implementation."""
    curve = fit_calibration(corpus_standards(), corrections=corrections)
    xs = [(corrections or {}).get(lvl, lvl) for lvl, _, _ in CORPUS]
    ys = [a for _, a, _ in CORPUS]
    ref = statistics.linear_regression(xs, ys)
    assert curve.slope == pytest.approx(ref.slope, rel=1e-12)
    assert curve.intercept == pytest.approx(ref.intercept, rel=1e-10)
    assert curve.r2 == pytest.approx(statistics.correlation(xs, ys) ** 2, rel=1e-12)


@pytest.mark.parametrize("corrections", [None, {12: 12.5}])
def test_fit_matches_numpy_polyfit(corrections: dict[float, float] | None) -> None:
    np = pytest.importorskip("numpy")
    curve = fit_calibration(corpus_standards(), corrections=corrections)
    xs = np.array([(corrections or {}).get(lvl, lvl) for lvl, _, _ in CORPUS], dtype=float)
    ys = np.array([a for _, a, _ in CORPUS])
    slope, intercept = np.polyfit(xs, ys, 1)
    r2 = np.corrcoef(xs, ys)[0, 1] ** 2
    assert curve.slope == pytest.approx(float(slope), rel=1e-10)
    assert curve.intercept == pytest.approx(float(intercept), rel=1e-9)
    assert curve.r2 == pytest.approx(float(r2), rel=1e-12)
    residuals = ys - (slope * xs + intercept)
    for point, res in zip(curve.points, residuals, strict=True):
        assert point.residual == pytest.approx(float(res), abs=1e-9)


def test_residuals_and_back_calculation() -> None:
    curve = fit_calibration(corpus_standards())
    assert math.fsum(p.residual for p in curve.points) == pytest.approx(0, abs=1e-9)
    for p in curve.points:
        assert p.predicted_area == pytest.approx(curve.slope * p.level + curve.intercept)
        assert p.back_calculated == pytest.approx((p.area - curve.intercept) / curve.slope)
        assert p.pct_error == pytest.approx((p.back_calculated - p.level) / p.level * 100)
    # (56.9860 − 8.390743) / 4.051133 = 11.99547 µg/mL against a nominal 12
    assert curve.points[0].back_calculated == pytest.approx(11.99547, abs=1e-5)
    assert curve.points[0].pct_error == pytest.approx(-0.0377, abs=1e-4)


def test_low_r2_is_flagged() -> None:
    stds = [Standard("a", 10, 10.0), Standard("b", 20, 40.0), Standard("c", 30, 15.0),
            Standard("d", 40, 45.0)]
    curve = fit_calibration(stds)
    assert curve.r2 is not None and curve.r2 < 0.99
    assert t.LOW_R2 in curve.flags
    assert t.LOW_R2 in curve.computation.flags
    # the threshold is configurable
    assert t.LOW_R2 not in fit_calibration(stds, min_r2=0.1).flags


def test_fewer_than_three_levels_is_flagged_but_fitted() -> None:
    stds = [Standard("a", 10, 41.0), Standard("a2", 10, 39.0), Standard("b", 20, 80.0)]
    curve = fit_calibration(stds)
    assert curve.distinct_levels == 2
    assert t.FEW_LEVELS in curve.flags
    assert curve.slope == pytest.approx(4.0)  # (80 − 40) / 10, replicates averaged by OLS
    assert curve.intercept == pytest.approx(0.0, abs=1e-12)


def test_one_level_cannot_be_fitted() -> None:
    curve = fit_calibration([Standard("a", 10, 41.0), Standard("b", 10, 39.0)])
    assert curve.slope is None and curve.intercept is None and curve.r2 is None
    assert not curve.fitted
    assert {t.FEW_LEVELS, t.NOT_FITTED} <= set(curve.flags)
    assert all(p.back_calculated is None for p in curve.points)
    assert fit_calibration([]).flags == [t.FEW_LEVELS, t.NOT_FITTED]


def test_exclusion_by_level_and_by_label() -> None:
    full = corpus_standards()
    curve = fit_calibration(full, exclude_levels=[250])
    ref = statistics.linear_regression([12, 25, 50, 100], [a for _, a, _ in CORPUS[:4]])
    assert curve.slope == pytest.approx(ref.slope, rel=1e-12)
    assert t.POINT_EXCLUDED in curve.flags
    excluded = [p for p in curve.points if p.excluded]
    assert [p.label for p in excluded] == ["250_Report.csv"]
    assert "level 250 excluded" in excluded[0].exclusion_reason
    # excluded points stay listed and are back-calculated against the line without them
    assert excluded[0].back_calculated is not None
    assert len(curve.points) == 5 and curve.distinct_levels == 4
    assert curve.calibrated_range == (12, 100)
    by_label = fit_calibration(full, exclude_labels=["250_Report.csv"])
    assert by_label.slope == curve.slope
    # the mean RT is over the points used only
    assert curve.mean_rt_min == pytest.approx(statistics.fmean([7.643, 7.633, 7.631, 7.624]))


def test_exclusions_can_leave_too_few_levels() -> None:
    curve = fit_calibration(corpus_standards(), exclude_levels=[12, 25, 50])
    assert t.FEW_LEVELS in curve.flags and curve.fitted
    curve = fit_calibration(corpus_standards(), exclude_levels=[12, 25, 50, 100])
    assert t.NOT_FITTED in curve.flags and not curve.fitted


def test_configuration_that_matches_nothing_is_flagged() -> None:
    curve = fit_calibration(corpus_standards(), corrections={13: 13.5}, exclude_levels=[7],
                            exclude_labels=["nope"])
    assert t.CONFIG_UNMATCHED in curve.flags
    step = next(s for s in curve.computation.steps if "matched no standard" in s.label)
    assert step.value == ["correction 13", "exclude label 'nope'", "exclude level 7"]
    assert curve.slope == fit_calibration(corpus_standards()).slope


def test_all_equal_areas_give_undefined_r2() -> None:
    curve = fit_calibration([Standard(str(i), i, 5.0) for i in (1, 2, 3)])
    assert curve.slope == 0 and curve.r2 is None
    assert t.R2_UNDEFINED in curve.flags
    assert all(p.back_calculated is None for p in curve.points)


def test_trace_is_json_ready() -> None:
    import json

    curve = fit_calibration(corpus_standards(), corrections={12: 12.5}, exclude_levels=[250])
    dumped = json.dumps(curve.computation.to_json(), allow_nan=False)
    assert "least-squares fit" in dumped and "calibration/" in dumped


def test_non_finite_input_is_refused() -> None:
    with pytest.raises(t.ChemistryError):
        fit_calibration([Standard("a", 1, float("nan")), Standard("b", 2, 3.0)])
    with pytest.raises(t.ChemistryError):
        linear_fit([1.0, 1.0], [2.0, 3.0])


_coef = st.floats(min_value=1e-3, max_value=1e3) | st.floats(min_value=-1e3, max_value=-1e-3)


@settings(max_examples=300)
@given(a=_coef, b=st.floats(min_value=-1e3, max_value=1e3),
       xs=st.lists(st.floats(min_value=0, max_value=1e3), min_size=2, max_size=12))
def test_exact_line_is_recovered(a: float, b: float, xs: list[float]) -> None:
    assume(max(xs) - min(xs) > 1e-2)
    ys = [a * x + b for x in xs]
    fit = linear_fit(xs, ys)
    scale = abs(a) * max(abs(x) for x in xs) + abs(b)
    assert fit.slope == pytest.approx(a, rel=1e-9)
    assert abs(fit.intercept - b) <= 1e-9 * scale
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
