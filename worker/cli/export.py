"""``accu-ingest export``: current results or every peak as CSV or JSON (results/export.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import IO, Any

from worker.cli.options import command, common
from worker.deliver import asm, lims
from worker.record import db
from worker.results.export import (
    PEAK_COLUMNS,
    RESULT_COLUMNS,
    parse_since,
    peaks,
    results,
    write_csv,
)
from worker.runtime import logs
from worker.settings import Settings

NAMES = ("export",)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = command(sub, "export", "results or peaks as CSV or JSON", """
Current results (or every peak) as CSV or JSON, to standard output or a file. A file gets a
UTF-8 byte-order mark so Excel reads µ and accents right.""", """
  accu-ingest export -o results.csv
  accu-ingest export --what peaks --since 2024-05-01 --format json | jq length
  accu-ingest export --what peaks | head
  accu-ingest export --format lims-csv -o lims.csv
  accu-ingest export --format asm -o asm/      # one Allotrope document per injection""")
    common(p)
    p.add_argument("--format", choices=["csv", "json", "lims-csv", "lims-json", "asm"],
                   default="csv", help="csv (default) or json: --what; lims-csv, lims-json: one "
                   "row per sample and analyte (README: Deliver); asm: one Allotrope "
                   "liquid-chromatography document per injection into the folder --output")
    p.add_argument("--what", choices=["results", "peaks"], default="results",
                   help="results (default): current results; peaks: every integrated peak")
    p.add_argument("--since", help="only rows computed/ingested from this UTC date or time")
    p.add_argument("--output", "-o", type=Path, help="file to write (default: standard output)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        print(f"accu-ingest: {exc}", file=sys.stderr)
        return 2
    if args.format == "asm" and not args.output:
        print("accu-ingest: --format asm writes one file per injection: pass --output with a "
              "folder", file=sys.stderr)
        return 2
    db.open_database(settings)
    if args.format == "asm":
        return _asm(settings, args, since)
    if args.format.startswith("lims-"):
        rows, columns, args.format = lims.rows(since=since), lims.COLUMNS, args.format[5:]
        args.what = "lims rows"
    else:
        rows = results(since) if args.what == "results" else peaks(since)
        columns = RESULT_COLUMNS if args.what == "results" else PEAK_COLUMNS
    if not args.output:
        _write(rows, columns, args.format, sys.stdout)
        _logged(settings, args, len(rows))
        return 0
    # A file gets a UTF-8 byte-order mark so Excel reads µ and accents right; a pipe does not.
    encoding = "utf-8-sig" if args.format == "csv" else "utf-8"
    with open(args.output, "w", encoding=encoding, newline="") as out:
        _write(rows, columns, args.format, out)
    _logged(settings, args, len(rows))
    print(f"{len(rows)} {args.what} written to {args.output}", file=sys.stderr)
    return 0


def _asm(settings: Settings, args: argparse.Namespace, since: Any) -> int:
    """Each current injection's document, validated, into the folder --output."""
    folder: Path = args.output
    if folder.exists() and not folder.is_dir():
        print(f"accu-ingest: --output {folder} is a file: --format asm needs a folder",
              file=sys.stderr)
        return 2
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for injection in asm.injections(since):
        doc = asm.document(injection)
        try:
            asm.validate(doc)
        except asm.MissingExtra as exc:
            print(f"accu-ingest: {exc}", file=sys.stderr)
            return 2
        except ValueError as exc:  # a bug of ours, not the operator's: say which injection
            print(f"accu-ingest: the document of {injection.source_file.path} (injection "
                  f"{injection.number}) does not validate: {exc}", file=sys.stderr)
            return 1
        with open(folder / asm.file_name(injection), "w", encoding="utf-8") as out:
            json.dump(doc, out, ensure_ascii=False)
        written += 1
    args.what = "ASM documents"
    _logged(settings, args, written)
    print(f"{written} ASM documents written to {folder}", file=sys.stderr)
    return 0


def _logged(settings: Settings, args: argparse.Namespace, rows: int) -> None:
    logs.action(settings, "export", f"exported {rows} {args.what}", what=args.what,
                format=args.format, rows=rows, since=args.since,
                output=str(args.output) if args.output else "stdout")


def _write(rows: list[dict[str, Any]], columns: list[str], fmt: str, out: IO[str]) -> None:
    if fmt == "csv":
        write_csv(rows, columns, out)
    else:
        json.dump(rows, out, indent=1, ensure_ascii=False)
        out.write("\n")
