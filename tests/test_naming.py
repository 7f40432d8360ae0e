"""Sample identity from names, as the lab writes them."""

from __future__ import annotations

import pytest

from worker.naming import BLANK, OTHER, SAMPLE, STANDARD, Identity, identify


@pytest.mark.parametrize(("name", "expected"), [
    ("P-0142_Inj_1_PeakData.csv", Identity("P-0142", SAMPLE, injection=1)),
    ("PB-0053_Inj_1_BPC_PeakData.csv", Identity("PB-0053", SAMPLE, analyte="BPC", injection=1)),
    ("AOD9604_Std_100.dx_DAD1A.CSV", Identity("AOD9604_Std_100", STANDARD, "AOD9604", 100.0)),
    ("250_Report.csv", Identity("Std_250", STANDARD, level=250.0)),
    ("12_Report.csv", Identity("Std_12", STANDARD, level=12.0)),
    ("Blank_1.dx_DAD1A.CSV", Identity("Blank_1", BLANK)),
    ("Requilibration.dx_DAD1A.CSV", Identity("Requilibration", OTHER)),
    ("P-0111_Inj_10", Identity("P-0111", SAMPLE, injection=10)),
    ("Lot 7 final.csv", Identity("Lot 7 final", SAMPLE)),
])
def test_identity_from_names(name: str, expected: Identity) -> None:
    assert identify(name) == expected
