"""What the configuration tells parsers, as plain models: the code page of a file by its name,
and the column mappings of the generic table parser.

Only pydantic models live here, so that ``worker.settings`` can validate the ``encodings`` and
``[tables.*]`` settings with them without importing any parser; the registry hands a frozen
``ParserOptions`` to every ``sniff`` and ``parse`` as their third argument.
"""

from __future__ import annotations

import fnmatch
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DateOrder = Literal["auto", "day-first", "month-first"]
PeakColumn = Literal["rt", "area", "area_pct", "height", "name", "number", "begin", "end",
                     "width", "type"]


class TableMapping(BaseModel):
    """One ``[tables.NAME]`` entry: which files, and which header holds which peak field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    files: list[str] = Field(min_length=1, description="file-name globs, e.g. ['*_peaks.xlsx']")
    columns: dict[PeakColumn, str] = Field(
        description="peak field → column header as printed; rt and area are required")
    sheet: str | None = Field(None, description="worksheet name (xlsx); default the first")
    header_row: int | None = Field(None, ge=1, description="1-based; default: found by headers")
    delimiter: str | None = Field(None, min_length=1, max_length=1,
                                  description="text files: default TAB, ';' or ',' as found")
    decimal_comma: bool = Field(False, description="text cells use a decimal comma")
    signal: str = Field("table", min_length=1, description="name of the signal in the rows")

    @field_validator("columns")
    @classmethod
    def _required(cls, columns: dict[str, str]) -> dict[str, str]:
        missing = [c for c in ("rt", "area") if c not in columns]
        if missing:
            raise ValueError(f"columns must map {' and '.join(missing)} to a header")
        return columns

    def applies_to(self, filename: str) -> bool:
        base = filename.replace("\\", "/").rsplit("/", 1)[-1].lower()
        return any(fnmatch.fnmatch(base, glob.lower()) for glob in self.files)


class ParserOptions(BaseModel):
    """Everything a parser may know besides the bytes and the file name; immutable, so one
    instance can be shared by every thread parsing with the same configuration."""

    model_config = ConfigDict(frozen=True)

    encodings: tuple[tuple[str, str], ...] = Field(
        (), description="(file-name glob, code page) pairs; the first glob matching wins")
    tables: tuple[TableMapping, ...] = Field((), description="the [tables.*] column mappings")
    date_order: DateOrder = Field(
        "auto", description="day/month order of a/b/yyyy dates; auto: from the file's own dates")
    # Memory limits (settings of the same names): what a real lab never comes near, so that a
    # file's parse stays within a bounded memory whatever the file.
    max_peaks_per_table: int = Field(100_000, ge=1, description="rows of one peak table")
    max_trace_points: int = Field(1_500_000, ge=1, description="points of one trace")
    max_sheet_cells: int = Field(1_000_000, ge=1, description="cells of one worksheet read")
    default_encoding: str | None = Field(
        None, description="code page to try after the BOM and a declared or configured one; "
                          "None: this machine's (the ANSI code page on Windows)")

    def encoding_for(self, filename: str | None) -> str | None:
        """The code page configured for ``filename``, used when the file declares none."""
        if filename is None or not self.encodings:  # every sniffer asks, on every file
            return None
        return next((codec for glob, codec in self.encodings
                     if fnmatch.fnmatch(filename.lower(), glob.lower())), None)


NO_OPTIONS = ParserOptions()
