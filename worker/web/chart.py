"""Plots as server-side SVG geometry: chromatograms (peaks shaded, the main peak marked, zoom,
signals overlaid) and calibration curves (points, fit, residuals, excluded levels).

SVG drawn on the server, not a JavaScript plotting library: the page needs no script at all
(the Content-Security-Policy forbids every script), prints and saves as it shows, works on an
offline lab PC, and the tests read the plot from the DOM. The templates draw it from the
numbers here (autoescaped, like everything else).

Long traces are thinned for display only (never in storage) by keeping each pixel column's
minimum and maximum, in the order they occur: a peak one sample wide still reaches its height.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

WIDTH, HEIGHT = 960, 380
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 16, 40
COLOURS = ("#1f5fa8", "#c4471b", "#2e8540", "#7a3e9d", "#b8860b", "#008b8b", "#555555")


def downsample(times: list[float], values: list[float], t0: float, t1: float,
               columns: int) -> list[tuple[float, float]]:
    """The points in [t0, t1], at most two per column (its min and max, in time order)."""
    if t1 <= t0 or columns <= 0:
        return []
    scale = columns / (t1 - t0)
    out: list[tuple[float, float]] = []
    col = -1
    lo = hi = None
    for t, v in zip(times, values, strict=False):
        if t < t0 or t > t1 or v != v:  # outside, or NaN
            continue
        c = min(int((t - t0) * scale), columns - 1)
        if c != col:
            if lo is not None and hi is not None:
                out.extend(sorted({lo, hi}))
            col, lo, hi = c, (t, v), (t, v)
            continue
        if v < lo[1]:  # type: ignore[index]
            lo = (t, v)
        if v > hi[1]:  # type: ignore[index]
            hi = (t, v)
    if lo is not None and hi is not None:
        out.extend(sorted({lo, hi}))
    return out


def ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """Round-numbered ticks across [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step) + 1)]


def label(value: float) -> str:
    return f"{value:.6g}"


@dataclass
class Axes:
    """Data → pixel mapping of one plot area."""

    x0: float
    x1: float
    y0: float
    y1: float
    width: int = WIDTH
    height: int = HEIGHT
    top: int = TOP

    def x(self, v: float) -> float:
        return round(LEFT + (v - self.x0) / (self.x1 - self.x0) * (self.width - LEFT - RIGHT), 2)

    def y(self, v: float) -> float:
        span = self.y1 - self.y0 or 1.0
        plot = self.height - self.top - BOTTOM
        return round(self.top + plot - (v - self.y0) / span * plot, 2)

    def frame(self) -> dict[str, Any]:
        return {"left": LEFT, "right": self.width - RIGHT, "top": self.top,
                "bottom": self.height - BOTTOM, "width": self.width, "height": self.height,
                "xticks": [{"at": self.x(t), "label": label(t)} for t in ticks(self.x0, self.x1)],
                "yticks": [{"at": self.y(t), "label": label(t)} for t in ticks(self.y0, self.y1)]}


@dataclass
class Chromatogram:
    frame: dict[str, Any]
    lines: list[dict[str, Any]] = field(default_factory=list)
    peaks: list[dict[str, Any]] = field(default_factory=list)
    main: dict[str, Any] | None = None
    window: tuple[float, float] = (0.0, 1.0)
    points_drawn: int = 0
    points_stored: int = 0


def matches(trace_signal: str, peak_signal: str) -> bool:
    """A trace named ``DAD1 A`` and a peak table ``DAD1 A, Sig=210,4 …`` are one signal."""
    a, b = trace_signal.strip().lower(), peak_signal.strip().lower()
    return a == b or b.startswith(a + ",") or a.startswith(b + ",")


def chromatogram(traces: list[tuple[dict[str, Any], list[float], list[float]]],
                 peaks: list[dict[str, Any]], peak_signal: str | None,
                 window: tuple[float, float] | None = None) -> Chromatogram:
    """Geometry of the traces overlaid, with the purity signal's peaks shaded under the trace
    that carries them and the main peak marked; ``window`` zooms to a time range."""
    t_lo = min((t[0] for _, t, _ in traces if t), default=0.0)
    t_hi = max((t[-1] for _, t, _ in traces if t), default=1.0)
    if window is not None:
        t_lo, t_hi = max(window[0], t_lo), min(window[1], t_hi)
    if t_hi <= t_lo:
        t_hi = t_lo + 1.0
    columns = WIDTH - LEFT - RIGHT
    thinned = [(meta, downsample(t, v, t_lo, t_hi, columns)) for meta, t, v in traces]
    values = [v for _, pts in thinned for _, v in pts]
    y_lo, y_hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (y_hi - y_lo) * 0.05 or 1.0
    axes = Axes(t_lo, t_hi, y_lo - pad, y_hi + pad)
    out = Chromatogram(axes.frame(), window=(t_lo, t_hi),
                       points_stored=sum(len(t) for _, t, _ in traces))
    carrier = None
    for n, (meta, pts) in enumerate(thinned):
        out.points_drawn += len(pts)
        out.lines.append({"signal": meta["signal"], "colour": COLOURS[n % len(COLOURS)],
                          "points": " ".join(f"{axes.x(t)},{axes.y(v)}" for t, v in pts)})
        if carrier is None and peak_signal and matches(meta["signal"], peak_signal):
            carrier = pts
    if carrier is None and len(thinned) == 1:
        carrier = thinned[0][1]
    for p in peaks:
        begin = p["begin_min"] if p["begin_min"] is not None else p["rt_min"] - (
            p["width_min"] or 0.02)
        end = p["end_min"] if p["end_min"] is not None else p["rt_min"] + (p["width_min"] or 0.02)
        if end < t_lo or begin > t_hi:
            continue
        under = [(t, v) for t, v in (carrier or []) if begin <= t <= end]
        shape = None
        if len(under) >= 2:
            base = [(under[-1][0], under[-1][1]), (under[0][0], under[0][1])]
            shape = " ".join(f"{axes.x(t)},{axes.y(v)}" for t, v in under + base)
        apex = max((v for _, v in under), default=None)
        item = {"id": p["id"], "number": p["number"], "rt_min": p["rt_min"],
                "main": p["main"], "shape": shape, "x": axes.x(min(max(p["rt_min"], t_lo), t_hi)),
                "apex_y": axes.y(apex) if apex is not None else axes.frame()["top"] + 12}
        out.peaks.append(item)
        if p["main"]:
            out.main = item
    return out


def peak_window(peak: dict[str, Any]) -> tuple[float, float]:
    """The time range that shows one peak with room either side."""
    begin = peak["begin_min"] if peak["begin_min"] is not None else peak["rt_min"] - 0.1
    end = peak["end_min"] if peak["end_min"] is not None else peak["rt_min"] + 0.1
    room = max(end - begin, 0.02)
    return begin - room, end + room


CAL_HEIGHT, RESID_HEIGHT = 320, 150


def calibration(curve: dict[str, Any]) -> dict[str, Any] | None:
    """Geometry of one curve: its points (excluded ones apart), the fitted line, and each
    point's residual (area − fit) below it."""
    points = curve["points"]
    if not points:
        return None
    levels = [p["level"] for p in points]
    areas = [p["area"] for p in points]
    x_hi = max(levels) * 1.05 or 1.0
    y_hi = max(areas) * 1.08 or 1.0
    y_lo = min(0.0, min(areas))
    axes = Axes(0.0, x_hi, y_lo, y_hi, height=CAL_HEIGHT)
    slope, intercept = curve.get("slope"), curve.get("intercept")
    fit = None
    if slope is not None and intercept is not None:
        fit = {"x1": axes.x(0), "y1": axes.y(intercept),
               "x2": axes.x(x_hi), "y2": axes.y(intercept + slope * x_hi)}
    resid = [p["area"] - (intercept + slope * p["level"]) if fit else 0.0 for p in points]
    r_hi = max((abs(r) for r in resid), default=1.0) * 1.2 or 1.0
    raxes = Axes(0.0, x_hi, -r_hi, r_hi, height=RESID_HEIGHT)
    return {
        "frame": axes.frame(), "fit": fit, "residual_frame": raxes.frame(),
        "zero_y": raxes.y(0.0),
        "points": [{"x": axes.x(p["level"]), "y": axes.y(p["area"]), "excluded": p["excluded"],
                    "label": p["label"], "level": p["level"], "area": p["area"],
                    "reason": p.get("exclusion_reason"),
                    "rx": raxes.x(p["level"]), "ry": raxes.y(r), "residual": r}
                   for p, r in zip(points, resid, strict=True)],
    }
