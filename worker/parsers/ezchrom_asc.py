"""EZChrom / EZStart ASCII export (``*.dat.asc``): a ``Key:<TAB>value`` header, then every
channel's raw detector counts stacked in one column, channel 1 first.

The file holds no time column: point ``i`` of a channel is at ``i / Sampling Rate`` seconds,
times the channel's ``X Axis Multiplier`` (0.016667 for minutes), and a value is the count times
its ``Y Axis Multiplier``. Which rows belong to which channel is known only from ``Total Data
Points``, so the rows must add up to the declared counts exactly: a file with fewer or more rows
is rejected, never padded or cut.

EZStart also prints ``Vial Number`` and ``Volume`` (the injection volume, no unit): the vial is part
of what the sample is (its identity), so both fill their fields when present.
"""

from __future__ import annotations

import math
from array import array

from worker.parsers.base import (
    CERTAIN,
    MIN_CONFIDENCE,
    NOT_MINE,
    ParsedFile,
    ParseError,
    Signal,
    Trace,
    validated,
)
from worker.parsers.dates import parse_timestamp
from worker.parsers.options import ParserOptions
from worker.parsers.text import ascii_bytes, decode, may_contain, parse_number, split_lines

name = "ezchrom-asc"
version = "1.1"
display_name = "EZChrom/EZStart ASCII export (.asc)"
extensions = (".asc", ".dat.asc")

# Per-channel header keys: one value per channel, then (for these two) a unit word.
_PER_CHANNEL = ("Sampling Rate", "Total Data Points", "X Axis Title", "Y Axis Title",
                "X Axis Multiplier", "Y Axis Multiplier")
_UNIT_WORD = {"Sampling Rate": "Hz", "Total Data Points": "Pts."}
_TIME_UNITS = {"minutes": "min", "seconds": "s"}


def sniff(data: bytes, filename: str, options: ParserOptions) -> int:
    """CERTAIN with ``Version:`` first, ``Maxchannels:`` and both axis multipliers; 60 with the
    first two only (``parse`` then says which key is missing)."""
    configured = options.encoding_for(filename)
    view = ascii_bytes(data, configured)
    if view is not None and not view.startswith(b"Version:"):
        return NOT_MINE  # the first line is not ``Version:``
    if not may_contain(data[:4096], ("Maxchannels:",), configured):
        return NOT_MINE
    try:
        text, _ = decode(data[:4096], configured=configured)
    except (ParseError, UnicodeDecodeError):
        return NOT_MINE
    lines = split_lines(text)
    if len(lines) < 2 or not lines[0].startswith("Version:") or \
            not lines[1].startswith("Maxchannels:"):
        return NOT_MINE
    keys = {ln.split(":", 1)[0] for ln in lines[:20]}
    if {"Total Data Points", "X Axis Multiplier", "Y Axis Multiplier"} <= keys:
        return CERTAIN
    return MIN_CONFIDENCE + 10


def parse(data: bytes, filename: str, options: ParserOptions) -> ParsedFile:
    text, encoding = decode(data, filename, configured=options.encoding_for(filename))
    lines = split_lines(text)
    header: dict[str, tuple[str, int]] = {}
    body_start = 0
    for index, line in enumerate(lines):
        key, sep, value = line.partition(":")
        if not sep or _is_number(line):
            body_start = index
            break
        if key in header:
            raise ParseError(f"header key {key!r} appears twice", line=index + 1,
                             filename=filename)
        header[key] = (value.removeprefix("\t"), index + 1)
    else:
        raise ParseError("no data rows after the header", line=len(lines) or 1, filename=filename)
    if not lines or not lines[0].startswith("Version:"):
        raise ParseError("expected 'Version:' on the first line of an EZChrom ASCII export",
                         line=1, filename=filename)
    channels = _channel_count(header, filename)
    per_channel = {key: _per_channel(header, key, channels, filename) for key in _PER_CHANNEL}

    counts = [_integer(v, "Total Data Points", header["Total Data Points"][1], filename)
              for v in per_channel["Total Data Points"]]
    body = lines[body_start:]
    while body and not body[-1].strip():
        body.pop()
    if len(body) != sum(counts):
        raise ParseError(
            f"the header declares {' + '.join(map(str, counts))} = {sum(counts)} data points, "
            f"the file has {len(body)} rows", line=body_start + len(body), filename=filename)
    if not text.endswith(("\n", "\r")):
        raise ParseError("the last row has no line end: the file is cut off or still being "
                         "written", line=body_start + len(body), filename=filename)

    signals = []
    offset = 0
    for channel, count in enumerate(counts):
        line_of = header["Sampling Rate"][1]
        rate = parse_number(per_channel["Sampling Rate"][channel], what="Sampling Rate",
                            line=line_of, filename=filename)
        x_mul = parse_number(per_channel["X Axis Multiplier"][channel], what="X Axis Multiplier",
                             line=header["X Axis Multiplier"][1], filename=filename)
        y_mul = parse_number(per_channel["Y Axis Multiplier"][channel], what="Y Axis Multiplier",
                             line=header["Y Axis Multiplier"][1], filename=filename)
        if rate <= 0:
            raise ParseError(f"Sampling Rate {rate} Hz is not positive", line=line_of,
                             filename=filename)
        x_title = per_channel["X Axis Title"][channel]
        unit = _TIME_UNITS.get(x_title.strip().lower())
        if unit is None:
            raise ParseError(f"X Axis Title {x_title!r}: expected Minutes or Seconds",
                             line=header["X Axis Title"][1], filename=filename)
        values = array("d")
        first_line = body_start + offset + 1
        for i, cell in enumerate(body[offset:offset + count]):
            values.append(parse_number(cell, what=f"channel {channel + 1} point {i + 1}",
                                       line=first_line + i, filename=filename) * y_mul)
        # Seconds since injection, then the file's own conversion to its axis unit.
        times = array("d", (i / rate * x_mul for i in range(count)))
        if unit == "s":
            times = array("d", (t / 60 for t in times))
        offset += count
        with validated(f"invalid channel {channel + 1}", line=first_line, filename=filename):
            signals.append(Signal(
                name=f"Channel {channel + 1}",
                trace=Trace(times=times, values=values, time_unit="min",
                            value_unit=per_channel["Y Axis Title"][channel].strip() or None)))

    def fact(key: str) -> str | None:
        value = header.get(key, ("", 0))[0].strip()
        return value or None

    acquired = fact("Acquisition Date and Time")
    metadata = {k: v for k, (v, _) in header.items() if k not in _PER_CHANNEL and v.strip()}
    with validated("invalid content", filename=filename):
        return ParsedFile(
            format=name, parser_version=version, encoding=encoding,
            sample_name=fact("Sample ID"), method=fact("Method"), operator=fact("User Name"),
            vial=fact("Vial Number"), injection_volume=fact("Volume"),
            acquired_at=parse_timestamp(acquired) if acquired else None,
            metadata=metadata, signals=signals)


def _is_number(line: str) -> bool:
    try:
        parse_number(line)
    except ParseError:
        return False
    return True


def _channel_count(header: dict[str, tuple[str, int]], filename: str) -> int:
    if "Maxchannels" not in header:
        raise ParseError("header has no 'Maxchannels:' line", line=2, filename=filename)
    value, line = header["Maxchannels"]
    count = _integer(value, "Maxchannels", line, filename)
    if not 1 <= count <= 64:
        raise ParseError(f"Maxchannels {count}: expected 1 to 64", line=line, filename=filename)
    return count


def _per_channel(header: dict[str, tuple[str, int]], key: str, channels: int,
                 filename: str) -> list[str]:
    if key not in header:
        raise ParseError(f"header has no '{key}:' line", line=len(header) + 1, filename=filename)
    value, line = header[key]
    cells = value.split("\t")
    unit = _UNIT_WORD.get(key)
    if unit is not None:
        if not cells or cells[-1].strip() != unit:
            raise ParseError(f"'{key}:' should end with {unit!r}", line=line, filename=filename)
        cells = cells[:-1]
    if len(cells) != channels:
        raise ParseError(f"'{key}:' gives {len(cells)} values for {channels} channels",
                         line=line, filename=filename)
    return cells


def _integer(cell: str, what: str, line: int, filename: str) -> int:
    value = parse_number(cell, what=what, line=line, filename=filename)
    if value != math.floor(value) or value < 0:
        raise ParseError(f"{what} {cell.strip()!r} is not a count", line=line, filename=filename)
    return int(value)
