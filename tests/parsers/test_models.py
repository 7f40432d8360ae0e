"""The models every parser returns: what they keep, copy and refuse.

``ParsedFile.metadata`` takes a ``Metadata`` (checked once, shared by the files of a sequence)
as it is and validates any other mapping; a ``Signal`` keeps the ``DetailedPeak`` rows of the
one format that prints more than the common peak columns.
"""

from __future__ import annotations

import copy
import pickle

import pytest
from pydantic import ValidationError
from support.corpus import CORPUS

from worker import parsers
from worker.parsers.base import (
    DetailedPeak,
    Metadata,
    ParsedFile,
    ParseError,
    Peak,
    Signal,
    validated,
)
from worker.results import extras

_REPORT = CORPUS / "agilent-1290" / "100_Report.csv"


def _file(metadata: object) -> ParsedFile:
    return ParsedFile.model_validate({
        "format": "f", "parser_version": "1", "encoding": "utf-8", "metadata": metadata,
        "signals": [{"name": "A", "peaks": [{"number": 1, "rt_min": 1.0, "area": 2.0}]}]})


def test_checked_metadata_is_kept_and_a_plain_dict_is_validated_and_copied() -> None:
    checked = Metadata.of({"instrument": "1290"})
    plain = {"instrument": "1290"}
    assert _file(checked).metadata is checked
    kept = _file(plain).metadata
    assert kept == plain and kept is not plain and type(kept) is dict


@pytest.mark.parametrize("bad", [{"instrument": 1290}, {1: "x"}, ["x"]])
def test_metadata_of_other_types_is_refused_where_it_is_made(bad: object) -> None:
    with pytest.raises(ValidationError) as plain:
        _file(bad)
    assert all(err["loc"][0] == "metadata" for err in plain.value.errors())
    with pytest.raises(ValidationError):
        Metadata.of(bad)  # type: ignore[arg-type]


def test_shared_metadata_refuses_changes_but_copies_and_pickles() -> None:
    checked = Metadata.of({"operator": "ab"})
    for change in (lambda m: m.__setitem__("operator", "cd"), lambda m: m.update(x="y"),
                   lambda m: m.pop("operator"), lambda m: m.setdefault("x", "y"),
                   lambda m: m.clear(), lambda m: m.popitem(),
                   lambda m: m.__delitem__("operator")):
        with pytest.raises(TypeError, match="read-only; copy it"):
            change(checked)
    assert checked == {"operator": "ab"}
    for again in (pickle.loads(pickle.dumps(checked)), copy.copy(checked),
                  copy.deepcopy(checked)):
        assert again == checked and type(again) is Metadata
    mine = dict(checked)
    mine["operator"] = "cd"
    assert checked["operator"] == "ab"


def test_the_reports_of_a_sequence_share_one_checked_metadata() -> None:
    data = _REPORT.read_bytes()
    first = parsers.parse(bytes(bytearray(data)), "1_Report.csv")
    second = parsers.parse(bytes(bytearray(data)), "2_Report.csv")
    assert type(first.metadata) is Metadata and first.metadata is second.metadata
    assert first.metadata["acquisition method"] == "1290 AOD9604 method.amx"
    # A PeakData file's own lines after the table make metadata of its own, checked anew.
    peakdata = b"Height,Area,Area%,RT [min]\n1.0,2.0,100.0,1.5\nSum,2.0,,\n\nSample name:,P-1\n"
    assert type(parsers.parse(peakdata, "P-1_PeakData.csv").metadata) is dict


def test_detailed_peaks_keep_their_columns_and_others_have_none() -> None:
    detailed = DetailedPeak(number=1, rt_min=1.0, area=2.0, symmetry=0.9, amount=1.5,
                            amount_unit="%")
    signal = Signal(name="A", peaks=[detailed, Peak(number=2, rt_min=2.0, area=1.0)])
    kept, plain = signal.peaks or []
    assert kept is detailed and kept.details == {"symmetry": 0.9, "amount": 1.5,
                                                 "amount_unit": "%"}
    assert plain.details == {} and "symmetry" not in Peak.model_fields
    with pytest.raises(ValidationError):
        DetailedPeak(number=1, rt_min=1.0, area=2.0, symmetry=float("inf"))


def test_only_files_with_detailed_peaks_want_peak_detail_rows() -> None:
    report = parsers.parse(_REPORT.read_bytes(), _REPORT.name)
    assert not extras.wanted(report)
    with_details = report.model_copy(update={"signals": [Signal(name="A", peaks=[
        DetailedPeak(number=1, rt_min=1.0, area=2.0, symmetry=0.9)])]})
    without = report.model_copy(update={"signals": [Signal(name="A", peaks=[
        DetailedPeak(number=1, rt_min=1.0, area=2.0)])]})
    assert extras.wanted(with_details) and not extras.wanted(without)


def test_a_report_with_a_bad_metadata_value_is_still_a_parse_error() -> None:
    # The parser's own metadata is text by construction; a plug-in's is checked when it is
    # made, with the usual ParseError from ``validated``.
    refused = pytest.raises(ParseError, match=r"invalid metadata \(metadata\.instrument: "
                                              r"Input should be a valid string")
    with refused, validated("invalid metadata", filename="x.csv"):
        _file({"instrument": 1290})
