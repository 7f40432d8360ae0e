"""Thinning a trace for display keeps every peak's height (min/max per pixel column)."""

from __future__ import annotations

import math

from worker.web import chart


def test_a_one_sample_spike_survives_thinning_a_long_trace() -> None:
    n = 200_000
    times = [i / 10_000 for i in range(n)]  # 20 minutes
    values = [math.sin(t) for t in times]
    values[123_457] = 50.0  # a peak one sample wide
    values[7] = -9.0  # and a dip
    points = chart.downsample(times, values, times[0], times[-1], 800)
    assert len(points) <= 2 * 800
    assert max(v for _, v in points) == 50.0
    assert min(v for _, v in points) == -9.0
    assert [t for t, _ in points] == sorted(t for t, _ in points)  # drawn in time order


def test_zoom_keeps_only_the_window_and_nan_is_left_out() -> None:
    times = [i / 100 for i in range(1000)]
    values = [float("nan") if i == 500 else float(i) for i in range(1000)]
    points = chart.downsample(times, values, 4.0, 6.0, 50)
    assert points and all(4.0 <= t <= 6.0 for t, _ in points)
    assert all(v == v for _, v in points)
    assert chart.downsample(times, values, 6.0, 4.0, 50) == []


def test_the_main_peak_is_marked_on_the_trace_carrying_its_table() -> None:
    times = [i / 100 for i in range(1000)]
    values = [100.0 * math.exp(-((t - 5.0) ** 2) / 0.01) for t in times]
    peak = {"id": 1, "number": 1, "rt_min": 5.0, "begin_min": 4.8, "end_min": 5.2,
            "width_min": None, "main": True}
    plot = chart.chromatogram([({"signal": "DAD1 A"}, times, values)], [peak],
                              "DAD1 A, Sig=254,4 Ref=360,100")
    assert plot.main is not None and plot.main["rt_min"] == 5.0
    assert plot.peaks[0]["shape"]  # shaded under the trace
    zoomed = chart.chromatogram([({"signal": "DAD1 A"}, times, values)], [peak],
                                "DAD1 A", chart.peak_window(peak))
    assert zoomed.window[0] < 5.0 < zoomed.window[1] and zoomed.window[1] - zoomed.window[0] < 2
