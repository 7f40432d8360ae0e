"""Routes a GET to a page (Jinja2, autoescaped) or to its JSON twin under ``/api/``.

The HTTP server (runtime/http.py) hands over the path; this module reads the database and
returns the whole answer, so the database connection is closed before a slow client is written
to. Every value from a file goes through the template's autoescaping; the pages carry no script
and a Content-Security-Policy that forbids any.
"""

from __future__ import annotations

import contextlib
import json
import mimetypes
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape

from worker.record import audit
from worker.record.models import SourceFile
from worker.runtime.health import Probe, checks
from worker.web import chart, paging, queries
from worker.web.paging import BadQuery

CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
STATIC = ("style.css",)
API_COLUMNS = 2000  # trace points (min/max pairs) an API answer carries unless full=1


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


class Query:
    """The query string, one value per name unless asked for all."""

    def __init__(self, text: str) -> None:
        self.values = parse_qs(text, keep_blank_values=False)

    def get(self, name: str) -> str | None:
        found = self.values.get(name)
        return found[0].strip() if found else None

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])

    def number(self, name: str) -> int | None:
        value = self.get(name)
        if value is None:
            return None
        if not value.isdigit():
            raise BadQuery(f"{name} {value!r}: expected a number")
        return int(value)

    def real(self, name: str) -> float | None:
        value = self.get(name)
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            raise BadQuery(f"{name} {value!r}: expected a number of minutes") from None


def _env() -> Environment:
    env = Environment(loader=PackageLoader("worker.web", "templates"),
                      autoescape=select_autoescape(["html", "svg"], default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _num
    env.filters["pretty"] = lambda v: json.dumps(v, indent=1, ensure_ascii=False, default=str)
    env.filters["size"] = lambda n: f"{n:,}" if isinstance(n, int) else n
    env.globals["link"] = _link
    return env


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.{digits}f}" if isinstance(value, float) else f"{value:,}"


def _link(path: str, **params: Any) -> str:
    """A URL with its query (autoescaped where the template puts it)."""
    kept = {k: v for k, v in params.items() if v not in (None, "", [])}
    return path + ("?" + urlencode(kept, doseq=True) if kept else "")


Handler = Callable[..., Response]


class App:
    """One per status server: its routes, templates and the last verify verdict."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.settings = probe.settings
        self.env = _env()
        self._verify_lock = threading.Lock()
        self.verdict: dict[str, Any] | None = None
        self._key: bytes | None = None
        self._key_read = False
        self.routes: list[tuple[re.Pattern[str], Handler]] = [
            (re.compile(p + r"/?$"), h) for p, h in (
                (r"/", self.overview), (r"/files", self.files), (r"/files/(\d+)", self.file),
                (r"/jobs", self.jobs), (r"/jobs/(\d+)", self.job),
                (r"/samples/(\d+)", self.sample), (r"/injections/(\d+)", self.injection),
                (r"/audit", self.audit), (r"/audit/verify", self.verify),
                (r"/static/([a-z.]+)", self.static))]

    # ---- dispatch ------------------------------------------------------------------------

    def handles(self, path: str) -> bool:
        return path == "/" or path.startswith(("/api", "/files", "/jobs", "/samples",
                                               "/injections", "/audit", "/static"))

    def __call__(self, target: str) -> Response:
        path, _, qs = target.partition("?")
        api = path == "/api" or path.startswith("/api/")
        route = path[4:] if api else path
        if api and route in ("", "/"):
            return self._json(200, {"endpoints": [
                "/api/overview", "/api/files", "/api/files/{id}", "/api/jobs", "/api/jobs/{id}",
                "/api/samples/{id}", "/api/injections/{id}", "/api/audit",
                "/api/audit/verify"]})
        if api and route == "/overview":
            route = "/"
        query = Query(qs)
        for pattern, handler in self.routes:
            match = pattern.match(route)
            if match:
                try:
                    return handler(query, *match.groups(), api=api)
                except BadQuery as exc:
                    return self._error(400, str(exc), api)
                except queries.NotFound as exc:
                    return self._error(404, str(exc), api)
        return self._error(404, f"no page {path}", api)

    def _json(self, status: int, body: Any) -> Response:
        data = json.dumps(body, indent=1, ensure_ascii=False, default=str).encode("utf-8")
        return Response(status, data, "application/json; charset=utf-8")

    def _page(self, template: str, api: bool, data: dict[str, Any], **view: Any) -> Response:
        if api:
            return self._json(200, data)
        html = self.env.get_template(template).render(**data, **view)
        return Response(200, html.encode("utf-8"), "text/html; charset=utf-8",
                        dict(SECURITY_HEADERS))

    def _error(self, status: int, message: str, api: bool) -> Response:
        if api:
            return self._json(status, {"error": message})
        html = self.env.get_template("error.html").render(status=status, message=message)
        return Response(status, html.encode("utf-8"), "text/html; charset=utf-8",
                        dict(SECURITY_HEADERS))

    def _audit_key(self) -> bytes | None:
        if not self._key_read:
            self._key = audit.load_key(self.settings, create=False)
            self._key_read = True
        return self._key

    # ---- pages ---------------------------------------------------------------------------

    def overview(self, q: Query, api: bool) -> Response:
        health = checks(self.probe, write=False)  # /readyz takes the write lock; a page not
        depth = None
        if self.probe.queue is not None:
            with contextlib.suppress(Exception):
                depth = self.probe.queue.depth()
        data = queries.overview(health, depth)
        return self._page("overview.html", api, data, title="Overview")

    def files(self, q: Query, api: bool) -> Response:
        filters = {"state": q.get("state"), "name": q.get("name"), "format": q.get("format"),
                   "since": q.get("since"), "until": q.get("until")}
        size = paging.limit(q.get("limit"))
        found = queries.files(state=filters["state"], name=filters["name"],
                              fmt=filters["format"],
                              since=paging.when("since", filters["since"]),
                              until=paging.when("until", filters["until"]),
                              before=paging.cursor(q.get("cursor")), size=size)
        if api:  # the formats are the page's filter menu, and listing them reads every row
            return self._json(200, found.to_json())
        return self._page("files.html", False, found.to_json(), title="Files", filters=filters,
                          states=queries.FILE_STATES, formats=queries.formats(),
                          limit=q.get("limit"))

    def file(self, q: Query, file_id: str, api: bool) -> Response:
        row = SourceFile.get_or_none(SourceFile.id == int(file_id))
        if row is None:
            raise queries.NotFound(f"no file {file_id} in the ledger")
        story = queries.file_story(self.settings, row, self._audit_key(),
                                   with_rehash=q.get("rehash") == "1")
        return self._page("file.html", api, story, title=row.name)

    def jobs(self, q: Query, api: bool) -> Response:
        found = queries.jobs(before=paging.cursor(q.get("cursor")),
                             size=paging.limit(q.get("limit")), name=q.get("name"))
        return self._page("jobs.html", api, found.to_json(), title="Jobs", name=q.get("name"))

    def job(self, q: Query, job_id: str, api: bool) -> Response:
        data = queries.job(int(job_id))
        plots = [chart.calibration(c) for c in data["calibration"]]
        return self._page("job.html", api, data, title=data["job"]["name"], plots=plots)

    def sample(self, q: Query, sample_id: str, api: bool) -> Response:
        data = queries.sample(int(sample_id))
        return self._page("sample.html", api, data, title=data["sample"]["sample_id"])

    def injection(self, q: Query, injection_id: str, api: bool) -> Response:
        data = queries.injection(self.settings, int(injection_id))
        chosen = set(q.all("signal"))
        if not chosen:  # the purity signal's trace, else the first; more are overlaid on ask
            signal = data["purity_signal"]
            chosen = {t["signal"] for t in data["signals"]
                      if signal and chart.matches(t["signal"], signal)}
            if not chosen and data["signals"]:
                chosen = {data["signals"][0]["signal"]}
        shown = [t for t in data["signals"] if t["signal"] in chosen]
        traces = [(t, *queries.trace_points(t["id"])) for t in shown]
        signal = data["purity_signal"]
        peaks = data["peaks"].get(signal, []) if signal else []
        window = None
        zoom = q.number("peak")
        if zoom is not None:
            hit = [p for p in peaks if p["id"] == zoom]
            if not hit:
                raise BadQuery(f"peak {zoom}: not a peak of this injection's {signal} table")
            window = chart.peak_window(hit[0])
        lo, hi = q.real("from"), q.real("to")
        if lo is not None or hi is not None:
            window = (lo if lo is not None else -1e9, hi if hi is not None else 1e9)
        plot = chart.chromatogram(traces, peaks, signal, window) if traces else None
        if api:
            full = q.get("full") == "1"
            for t, times, values in traces:
                pts = (list(zip(times, values, strict=True)) if full else
                       chart.downsample(times, values, times[0], times[-1], API_COLUMNS)
                       if times else [])
                t["trace"] = {"t": [p[0] for p in pts], "v": [p[1] for p in pts],
                              "downsampled": not full and len(pts) < len(times)}
            data["shown_signals"] = [t["signal"] for t in shown]
            return self._json(200, data)
        return self._page("injection.html", False, data, title=data["sample"]["sample_id"],
                          plot=plot, chosen=chosen, zoomed=window is not None)

    def audit(self, q: Query, api: bool) -> Response:
        file_id, job_id = q.number("file"), q.number("job")
        kind = q.get("kind")
        if kind and kind not in queries.EVENT_KINDS:
            raise BadQuery(f"kind {kind!r}: expected one of {', '.join(queries.EVENT_KINDS)}")
        found = queries.audit_events(
            file_id=file_id, job_id=job_id, kind=kind,
            since=paging.when("since", q.get("since")),
            until=paging.when("until", q.get("until")),
            before=paging.cursor(q.get("cursor")), size=paging.limit(q.get("limit")))
        filters = {"file": file_id, "job": job_id, "kind": kind, "since": q.get("since"),
                   "until": q.get("until")}
        return self._page("audit.html", api, {**found.to_json(), "verdict": self.verdict},
                          title="Audit", filters=filters, kinds=queries.EVENT_KINDS)

    def verify(self, q: Query, api: bool) -> Response:
        """``audit verify``'s check of the whole trail, one at a time (it reads every event)."""
        if not self._verify_lock.acquire(blocking=False):
            return self._error(503, "a verification is running; try again in a moment", api)
        try:
            started = time.monotonic()
            anchor = audit.read_anchor(self.settings.audit_anchor_path, self._audit_key())
            report = audit.verify({cp.seq for cp in anchor.checkpoints})
            broken = audit.compare(report, anchor) if report.ok else None
            self.verdict = {
                "ok": report.ok and broken is None, "events": report.events,
                "first_bad": report.first_bad, "problem": report.problem or broken,
                "keyed_since": report.keyed_since, "checkpoints": len(anchor.checkpoints),
                "at": queries.iso(queries.utcnow()),
                "seconds": round(time.monotonic() - started, 3)}
        finally:
            self._verify_lock.release()
        if api:
            return self._json(200, self.verdict)
        return Response(303, b"", "text/plain", {"Location": "/audit"})

    def static(self, q: Query, name: str, api: bool) -> Response:
        if name not in STATIC:
            raise queries.NotFound(f"no static file {name}")
        data = resources.files("worker.web").joinpath("static", name).read_bytes()
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Response(200, data, kind, {"Cache-Control": "max-age=3600",
                                          "X-Content-Type-Options": "nosniff"})
