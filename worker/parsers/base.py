"""The one interface every parser implements (``Parser``), and the model it returns.

A parser is a module (or any object) with ``name``, ``version``, ``display_name``,
``extensions`` and two pure functions of (bytes, file name, ``ParserOptions``) — no I/O, no
database, no global state: ``sniff`` says how sure it is that the bytes are its format, on the
scale below, from the content (the name is only a hint); ``parse`` returns the ``ParsedFile`` or
raises ``ParseError`` with the line and the reason: a parser never returns a partial table.

Confidence scale of ``sniff`` (the registry picks the highest score, ties by parser name):

* ``NOT_MINE`` (0) — not this format.
* 1–49 — some of its landmarks, too few to claim the file: never chosen.
* ``MIN_CONFIDENCE`` (50) – 79 — this format by its shape, but generic (a two-column trace),
  partial (the header found, a required column missing, so ``parse`` can say what is wrong) or
  only configured (a ``[tables.*]`` glob matched).
* ``LIKELY`` (80) – 94 — the format's own landmarks are there (its header keys, its table layout).
* 95 – ``CERTAIN`` (100) — its signature and layout both, as only this format writes them.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Annotated, NoReturn, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)

from worker.parsers.options import ParserOptions

NOT_MINE = 0
MIN_CONFIDENCE = 50
LIKELY = 80
CERTAIN = 100


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
    """One integrated peak as the instrument printed it: the columns peak tables share."""

    # Finite numbers checked by pydantic's core (allow_inf_nan), not a Python validator per
    # field: the peaks of a burst are built by the million, and each field, even one left
    # empty, costs every one of them (the columns of one format alone are in DetailedPeak).
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

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

    @property
    def details(self) -> dict[str, float | str]:
        """What a format prints beyond the common columns: nothing (``DetailedPeak``)."""
        return {}


class DetailedPeak(Peak):
    """A peak with the columns ChemStation's Result.xml prints beyond the common ones
    (``details``); a ``Signal`` keeps it as it is."""

    symmetry: float | None = None
    baseline_start: float | None = Field(default=None, description="baseline at the start")
    baseline_end: float | None = None
    amount: float | None = Field(default=None, description="the amount the method computed")
    amount_unit: str | None = None

    @property
    def details(self) -> dict[str, float | str]:
        return {k: v for k, v in (("symmetry", self.symmetry),
                                  ("baseline_start", self.baseline_start),
                                  ("baseline_end", self.baseline_end), ("amount", self.amount),
                                  ("amount_unit", self.amount_unit)) if v is not None}


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


class Spectra(BaseModel):
    """A detector's spectra (a DAD's time × wavelength absorbances), already in their stored
    form: a matrix of a few million values is never held as Python numbers.

    ``data`` is a sequence of blocks, each ``<II`` (its frames, its compressed length) and then
    zlib (deflate) of its rows as little-endian ``value_type`` with their bytes shuffled (all
    first bytes, then all second bytes …; what makes spectra compress). ``i4``: the
    instrument's integer counts, each row stored as its difference from the row before (across
    blocks), a value being the count times ``scale``; ``f8``: the values themselves.
    ``worker.results.spectra.matrix`` reads it back, exactly as the instrument's software
    computes the values.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    name: str
    detector: str | None = None
    times: array
    wavelengths: array
    value_type: str = Field(pattern="^(i4|i8|f8)$")
    scale: float = 1.0
    value_unit: str | None = None
    data: bytes
    maximum: float | None = Field(default=None, description="largest value, for summaries")
    maximum_at: tuple[float, float] | None = Field(
        default=None, description="(time, wavelength) of the largest value")

    @model_validator(mode="after")
    def _consistent(self) -> Spectra:
        if not self.times or not self.wavelengths:
            raise ValueError(f"spectra {self.name!r} have no frames or no wavelengths")
        return self

    @property
    def frames(self) -> int:
        return len(self.times)


class Metadata(dict[str, str]):
    """Metadata validated once (``Metadata.of``) that a ``ParsedFile`` keeps as it is, where a
    plain dict is validated and copied: the files of a sequence repeat their method preamble,
    whose metadata a parser may read and check once and hand to each file. Read-only, since
    the files share it."""

    __slots__ = ()

    @classmethod
    def of(cls, values: Mapping[str, str]) -> Metadata:
        """``values`` checked as ``ParsedFile.metadata`` checks a plain dict."""
        return cls(_METADATA.validate_python(values))

    def _read_only(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("this metadata is shared by several files and read-only; copy it "
                        "(dict(metadata)) to change it")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _read_only

    def __reduce__(self) -> tuple[type[Metadata], tuple[dict[str, str]]]:
        return type(self), (dict(self),)


_METADATA: TypeAdapter[dict[str, str]] = TypeAdapter(dict[str, str])


def _kept(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    """A ``Metadata`` as it is (validated when made); anything else validated (and copied)."""
    return value if type(value) is Metadata else handler(value)


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
    level_label: str | None = Field(
        default=None, description="calibration level as printed (LabSolutions' Level 3): part "
                                  "of what the sample is, not a concentration")
    instrument: str | None = None
    method: str | None = None
    operator: str | None = None
    acquired_at: datetime | None = None
    injection_volume: str | None = None
    dilution_factor: float | None = Field(default=None, gt=0,
                                          description="as the file states it, for quantity")
    metadata: Annotated[dict[str, str], WrapValidator(_kept)] = Field(default_factory=dict)
    flags: list[str] = Field(default_factory=list,
                             description="what the file left open (an unreadable date …): "
                                         "recorded with the ingest, never guessed")
    signals: list[Signal]
    spectra: list[Spectra] = Field(default_factory=list,
                                   description="DAD spectra (ChemStation .UV)")

    @model_validator(mode="after")
    def _has_signal(self) -> ParsedFile:
        if not self.signals and not self.spectra:
            raise ValueError("no signal (peak table, trace or spectra) in file")
        return self


def too_many(what: str, limit: int, setting: str, *, line: int | None = None,
             filename: str | None = None) -> ParseError:
    """The rejection of a file holding more than a memory limit allows, naming the limit and
    the setting that raises it: read whole, it could take more memory than a lab PC has."""
    return ParseError(f"more than {limit:,} {what}: over the limit that keeps a file's memory "
                      f"bounded ({setting} = {limit}); raise {setting} if the file is genuine",
                      line=line, filename=filename)


class validated:  # a lower-case name: used as the function it replaced, ``with validated(...)``
    """Within the block, the models' own checks (finite numbers, area ≥ 0, Area% ≤ 100, a
    positive dilution …) and the conversions feeding them fail as a ``ParseError`` on ``line``
    saying ``what`` was invalid and why, rather than a pydantic error escaping the parser.
    ``label`` names a model field as the file prints it (``area`` → ``Area``).

    A class, not a generator context manager: it wraps every model a parser builds."""

    __slots__ = ("filename", "label", "line", "what")

    def __init__(self, what: str, *, line: int | None = None, filename: str | None = None,
                 label: Callable[[str], str] = str) -> None:
        self.what, self.line, self.filename, self.label = what, line, filename, label

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if isinstance(exc, ValidationError):
            problems = "; ".join(
                f"{'.'.join(self.label(str(p)) for p in err['loc']) or 'value'}: {err['msg']}"
                for err in exc.errors())
            raise ParseError(f"{self.what} ({problems})", line=self.line,
                             filename=self.filename) from None
        if isinstance(exc, ValueError):  # float() of a cell the model was to get
            raise ParseError(f"{self.what} ({exc})", line=self.line,
                             filename=self.filename) from None


class Parser(Protocol):
    """What the registry loads from each ``accu_ingest.parsers`` entry point."""

    name: str
    version: str
    display_name: str
    extensions: tuple[str, ...]

    def sniff(self, data: bytes, filename: str, options: ParserOptions) -> int: ...

    def parse(self, data: bytes, filename: str, options: ParserOptions) -> ParsedFile: ...


class SetParser(Parser, Protocol):
    """A parser whose format may also be one injection written as several files (ChemStation's
    CSV report set): ``parse_set`` reads them together, keyed by file name."""

    def parse_set(self, members: Mapping[str, bytes], options: ParserOptions) -> ParsedFile: ...
