"""The one interface every parser implements, and the model it returns.

A parser is pure: ``parse(data, filename) -> ParsedFile`` with no I/O and no database, and
``sniff(data, filename) -> int`` says how sure it is (0 = not mine, 100 = certainly mine) from
the content, the file name being only a hint. Anything that cannot be read raises ``ParseError``
with the line and the reason: a parser never returns a partial table.
"""

from __future__ import annotations

import math
from array import array
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ParseError(Exception):
    """A file that cannot be read as complete and valid; carries the line (1-based) and reason."""

    def __init__(self, reason: str, line: int | None = None, filename: str | None = None) -> None:
        self.reason = reason
        self.line = line
        self.filename = filename
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.filename or "file"
        if self.line is not None:
            where = f"{where}, line {self.line}"
        return f"{where}: {self.reason}"


class Peak(BaseModel):
    """One integrated peak as the instrument printed it."""

    model_config = ConfigDict(frozen=True)

    number: int = Field(ge=1)
    rt_min: float
    area: float = Field(ge=0)
    area_pct: float | None = Field(default=None, ge=0, le=100.0001)
    height: float | None = None
    begin_min: float | None = None
    end_min: float | None = None
    width_min: float | None = None
    peak_type: str | None = None
    name: str | None = None
    line: int | None = Field(default=None, description="source line of the row, for tracing")

    @field_validator("rt_min", "area", "area_pct", "height", "begin_min", "end_min", "width_min")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class Trace(BaseModel):
    """A chromatogram: paired time (minutes) and signal arrays, kept compact as ``array('d')``."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    times: array
    values: array
    time_unit: str = "min"
    value_unit: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Trace:
        if len(self.times) != len(self.values):
            raise ValueError("times and values differ in length")
        if len(self.times) == 0:
            raise ValueError("a trace needs at least one point")
        return self

    @property
    def points(self) -> int:
        return len(self.times)


class Signal(BaseModel):
    """One detector channel of a run: its peak table (None when the file has none) and/or trace."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    name: str
    detector: str | None = None
    wavelength_nm: float | None = None
    peaks: list[Peak] | None = None
    total_area: float | None = None
    trace: Trace | None = None

    @model_validator(mode="after")
    def _has_content(self) -> Signal:
        if self.peaks is None and self.trace is None:
            raise ValueError(f"signal {self.name!r} has neither a peak table nor a trace")
        return self


class ParsedFile(BaseModel):
    """Everything one export file says: run facts, and one or more signals."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    format: str
    parser_version: str
    encoding: str
    sample_name: str | None = None
    injection: int | None = None
    sample_kind: str | None = Field(default=None,
                                    description="standard | sample | blank, if stated")
    level: float | None = Field(default=None, description="nominal standard level, if stated")
    vial: str | None = None
    instrument: str | None = None
    method: str | None = None
    operator: str | None = None
    acquired_at: datetime | None = None
    injection_volume: str | None = None
    dilution_factor: float | None = Field(default=None, gt=0,
                                          description="as the file states it, for quantity")
    metadata: dict[str, str] = Field(default_factory=dict)
    signals: list[Signal]

    @model_validator(mode="after")
    def _has_signal(self) -> ParsedFile:
        if not self.signals:
            raise ValueError("no signal (peak table or trace) in file")
        return self


class Parser(Protocol):
    """What the registry loads from each ``accu_ingest.parsers`` entry point."""

    name: str
    version: str

    def sniff(self, data: bytes, filename: str) -> int: ...

    def parse(self, data: bytes, filename: str) -> ParsedFile: ...
