"""The run facts ChemStation writes beside the data in a ``.D`` folder: ``SAMPLE.XML`` (the
sample as entered: name, description, dilution, methods), ``acq.txt`` (the acquisition method's
parameters as run: data file, method) and ``RUN.LOG`` (the run's log: vial, injection number,
start and end). Pure functions of bytes, not registry parsers: outside a ``.D`` folder these
files say nothing on their own. Each returns {fact: text}; a file that cannot be read raises
``ParseError``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime

from worker.parsers.base import ParseError
from worker.parsers.text import decode

SAMPLE_XML, ACQ_TXT, RUN_LOG = "agilent-chemstation-sample-xml", "agilent-chemstation-acq-txt", \
    "agilent-chemstation-run-log"
version = "1.0"


def sample_xml(data: bytes, filename: str) -> dict[str, str]:
    text, _ = decode(data, filename)
    body = text[text.index("?>") + 2:] if text.lstrip().startswith("<?xml") else text
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ParseError(f"not well-formed XML ({exc})", line=exc.position[0],
                         filename=filename) from None
    if root.tag != "Sample":
        raise ParseError(f"root element {root.tag!r}, not 'Sample'", filename=filename)
    found = {key: (root.findtext(tag) or "").strip() for key, tag in (
        ("sample", "Name"), ("description", "Description"), ("dilution", "Dilution"),
        ("method", "ACQMethodPath"), ("data_analysis_method", "DAMethodPath"),
        ("injection", "Replicate"))}
    if found.get("method"):
        found["method"] = _method_name(found["method"])
    return {k: v for k, v in found.items() if v}


def acq_txt(data: bytes, filename: str) -> dict[str, str]:
    text, _ = decode(data, filename)
    found: dict[str, str] = {}
    for line in text.splitlines()[:10]:
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if key.strip() == "Data File":
            found["data_file"] = value.strip()
        elif key.strip() == "Acq. Method":
            found["method"] = _method_name(value.strip())
    if not found:
        raise ParseError("no 'Data File :' or 'Acq. Method:' line: not ChemStation's acq.txt",
                         filename=filename)
    volume = re.search(r"(?im)^\s*Injection Volume\s*:?\s+([0-9.]+\s*\S*l)\b", text)
    if volume:
        found["injection_volume"] = volume[1]
    return found


_LOG_TIME = re.compile(r"(\d{2}:\d{2}:\d{2}) (\d{2}/\d{2}/\d{2})\s*$")


def run_log(data: bytes, filename: str) -> dict[str, str]:
    text, _ = decode(data, filename)
    found: dict[str, str] = {}
    for line in text.splitlines():
        stamp = _LOG_TIME.search(line)
        when = (datetime.strptime(f"{stamp[2]} {stamp[1]}", "%m/%d/%y %H:%M:%S").isoformat()
                if stamp else None)
        if "Method started" in line:
            location = re.search(r"location '([^']+)'", line)
            if location:
                found["vial"] = location[1]
        elif re.search(r"\binj#\s*(\d+)|^Method\s+#\s*(\d+)", line):
            number = re.search(r"#\s*(\d+)", line)
            found.setdefault("injection", number[1] if number else "")
        if when and ("Instrument running sample" in line or "remote started" in line):
            found.setdefault("started", when)
        if when and "run completed" in line:
            found["completed"] = when
    if not found:
        raise ParseError("no 'Method started' or run lines: not ChemStation's RUN.LOG",
                         filename=filename)
    return {k: v for k, v in found.items() if v}


def _method_name(path: str) -> str:
    """``C:\\Chem32\\2\\Methods\\X.M`` → ``X.M``: what reports and headers print."""
    return re.split(r"[\\/]", path.rstrip("\\/"))[-1]


READERS: dict[str, tuple[str, Callable[[bytes, str], dict[str, str]]]] = {
    "sample.xml": (SAMPLE_XML, sample_xml), "acq.txt": (ACQ_TXT, acq_txt),
    "run.log": (RUN_LOG, run_log)}
