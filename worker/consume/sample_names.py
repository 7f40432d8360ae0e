"""Sample identity from an export's sample name or, when the file has none, its file name.

The lab's naming conventions carry the facts: ``P-0142_Inj_1_PeakData.csv`` is injection 1 of
sample P-0142; ``PB-0053_Inj_1_BPC_PeakData.csv`` adds the analyte label BPC;
``AOD9604_Std_100.dx_DAD1A.CSV`` is a standard of AOD9604 at level 100; ``250_Report.csv`` a
standard at level 250; ``Blank_1`` a blank.

A name the file prints (its ``Sample Name``) is the lab's own text and is kept verbatim: the
file-name rules (folders, suffixes, the layout word, a bare number meaning a standard level) would
turn ``LOT-A/01`` into ``01`` and then a level-1 standard, or ``0`` into ``Std_0``. Only the
conventions the lab types into sample names apply to it: ``_Inj_N`` (and an analyte label after
it), and the words that make a standard, a blank or a conditioning run, which classify the name
without rewriting it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from worker import parsers
from worker.record.models import BLANK, OTHER, SAMPLE, STANDARD

_LAYOUT = re.compile(r"[_ -]?(PeakData|Report)$", re.IGNORECASE)
_INJ = re.compile(r"^(?P<sample>.+?)[_ -]Inj[_ -]?(?P<inj>\d+)(?:[_ -](?P<label>.+))?$",
                  re.IGNORECASE)
_STD = re.compile(r"^(?:(?P<analyte>.+?)[_ -])?(?:Std|Standard|Cal)[_ -]?(?P<level>\d+(?:[.,]\d+)?)"
                  r"(?:[_ -](?P<rest>.+))?$", re.IGNORECASE)
_LEVEL_ONLY = re.compile(r"^(?P<level>\d+(?:[.,]\d+)?)$")
_BLANK = re.compile(r"^(?:Blank|Blk)(?:[_ -]?(?P<n>\d+))?$", re.IGNORECASE)
_CONDITIONING = re.compile(r"^(Re-?equilibration|Requilibration|Equilibration|Wash|Flush|"
                           r"Conditioning|Shutdown)\b", re.IGNORECASE)


@lru_cache(maxsize=1)
def _suffixes() -> re.Pattern[str]:
    """The extensions the registered parsers declare, with Agilent's signal infix
    (``.dx_DAD1A``) before them; built on first use, when the parsers are loaded anyway."""
    names = "|".join(re.escape(ext.lstrip(".")) for ext in parsers.extensions())
    return re.compile(rf"(\.dx_[A-Za-z0-9]+)?\.({names})$", re.IGNORECASE)


@dataclass(frozen=True)
class Identity:
    sample_id: str
    kind: str
    analyte: str = ""
    level: float | None = None
    injection: int = 1


def stem(filename: str) -> str:
    """The file name without folders, instrument suffixes and the layout word."""
    base = re.split(r"[\\/]", filename)[-1]
    base = _suffixes().sub("", base)
    return _LAYOUT.sub("", base).strip(" _-") or base


def identify(name: str, *, printed: bool = False) -> Identity:
    """Identity from a file name, or from the sample name the file prints (``printed``);
    anything unmatched is a sample named as given."""
    text = name if printed else stem(name)
    injection = 1
    label = ""
    inj = _INJ.match(text)
    if inj:
        text, injection, label = inj["sample"], int(inj["inj"]), (inj["label"] or "")
        if not printed:
            label = _LAYOUT.sub("", label).strip(" _-")
    if _BLANK.match(text):
        return Identity(sample_id=text, kind=BLANK, injection=injection)
    if _CONDITIONING.match(text):
        return Identity(sample_id=text, kind=OTHER, injection=injection)
    std = _STD.match(text)
    if std:
        level = float(std["level"].replace(",", "."))
        analyte = std["analyte"] or label
        return Identity(sample_id=text, kind=STANDARD, analyte=analyte, level=level,
                        injection=injection)
    only = None if printed else _LEVEL_ONLY.match(text)
    if only:
        level = float(only["level"].replace(",", "."))
        return Identity(sample_id=f"Std_{only['level']}", kind=STANDARD, analyte=label,
                        level=level, injection=injection)
    return Identity(sample_id=text, kind=SAMPLE, analyte=label, injection=injection)
