"""The binary instrument formats on their own: ChemStation ``.ch`` signals and ``.UV`` spectra
(rainbow-api), ``Result.xml``, AIA/ANDI netCDF; what each reads from the real files, and the
reason each gives for a file that is cut off, damaged or of a version it does not read."""

from __future__ import annotations

from pathlib import Path

import netCDF4  # the instruments extra, which the README's test command installs
import pytest
import rainbow.agilent.chemstation as rainbow

from worker import parsers
from worker.parsers import andi_aia, chemstation_ch, chemstation_uv
from worker.parsers.base import ParseError
from worker.parsers.options import NO_OPTIONS


@pytest.fixture
def folders(corpus: Path) -> Path:
    return corpus / "agilent-chemstation-folders"


def test_a_ch_signal_is_the_trace_the_file_holds(folders: Path) -> None:
    data = (folders / "002-2-0312650-0713-BrPR.D" / "DAD1A.ch").read_bytes()
    parsed = parsers.parse(data, "DAD1A.ch")
    assert parsed.format == "agilent-chemstation-ch"
    (signal,) = parsed.signals
    assert (signal.name, signal.detector, signal.wavelength_nm) == (
        "DAD1A, Sig=210,4  Ref=360,100", "DAD", 210.0)
    trace = signal.trace
    assert trace is not None and trace.points == 2998 and trace.value_unit == "mAU"
    top = max(range(trace.points), key=trace.values.__getitem__)
    assert (round(trace.values[top], 2), round(trace.times[top], 5)) == (1062.07, 1.62733)
    assert parsed.sample_name == "0312650-0713-BrPR"
    assert parsed.acquired_at is not None and parsed.acquired_at.isoformat() == \
        "2021-09-30T17:26:25"


def test_a_ch_file_of_an_unknown_version_is_rejected_naming_it(folders: Path) -> None:
    data = bytearray((folders / "V181.D" / "FID1A.ch").read_bytes())
    data[0:4] = b"\x03182"
    with pytest.raises(ParseError, match="version '182'"):
        parsers.parse(bytes(data), "FID1A.ch")


@pytest.mark.parametrize("keep", [100, 0x1000, 20000])
def test_a_truncated_ch_file_is_rejected_with_a_reason(folders: Path, keep: int) -> None:
    data = (folders / "V181.D" / "FID1A.ch").read_bytes()[:keep]
    with pytest.raises(ParseError, match="truncated"):
        chemstation_ch.parse(data, "FID1A.ch", NO_OPTIONS)


def test_sniffing_needs_only_the_head(folders: Path) -> None:
    for path in (folders / "V181.D" / "FID1A.ch",
                 folders / "002-2-0312650-0713-BrPR.D" / "DAD1.UV"):
        head = path.read_bytes()[:65536]
        assert parsers.detect(head, path.name).name == parsers.detect(
            path.read_bytes(), path.name).name


def test_uv_spectra_are_stored_losslessly_and_compactly(folders: Path) -> None:
    from worker.results.spectra import matrix

    path = folders / "002-2-0312650-0713-BrPR.D" / "DAD1.UV"
    data = path.read_bytes()
    (spectra,) = chemstation_uv.parse(data, "DAD1.UV", NO_OPTIONS).spectra
    values = matrix(spectra.value_type, spectra.scale, len(spectra.wavelengths), spectra.data)
    expected = rainbow.parse_uv(str(path))
    assert (values == expected.data).all()  # every value, to the last bit
    assert list(spectra.times) == list(expected.xlabels)
    assert len(spectra.data) < len(data)  # smaller than the instrument's own file


def test_uv_read_in_slices_equals_uv_read_whole(folders: Path, monkeypatch) -> None:
    from worker.results.spectra import matrix

    data = (folders / "002-2-0312650-0713-BrPR.D" / "DAD1.UV").read_bytes()
    whole = chemstation_uv.parse(data, "DAD1.UV", NO_OPTIONS).spectra[0]
    monkeypatch.setattr(chemstation_uv, "_SLICE_BYTES", 5000)  # ~16 frames a slice
    sliced = chemstation_uv.parse(data, "DAD1.UV", NO_OPTIONS).spectra[0]
    a = matrix(whole.value_type, whole.scale, 106, whole.data)
    b = matrix(sliced.value_type, sliced.scale, 106, sliced.data)
    assert (a == b).all() and list(whole.times) == list(sliced.times)
    assert sliced.maximum == whole.maximum and sliced.maximum_at == whole.maximum_at


def test_a_uv_file_too_big_to_copy_is_read_from_its_mapping(folders: Path, tmp_path: Path,
                                                            monkeypatch) -> None:
    """An hour of DAD spectra is hundreds of MB: handed over as the raw store's mmap, it is
    read a slice at a time, not refused as too big to read whole."""
    import mmap

    path = folders / "002-2-0312650-0713-BrPR.D" / "DAD1.UV"
    monkeypatch.setattr(parsers, "WHOLE_BYTES", 1024)  # this file stands for a big one
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
        (spectra,) = parsers.parse(view, "DAD1.UV", NO_OPTIONS).spectra  # type: ignore[arg-type]
    whole = chemstation_uv.parse(path.read_bytes(), "DAD1.UV", NO_OPTIONS).spectra[0]
    assert spectra == whole


def test_a_truncated_uv_file_is_rejected_naming_the_frame(folders: Path) -> None:
    data = (folders / "002-2-0312650-0713-BrPR.D" / "DAD1.UV").read_bytes()[:200_000]
    with pytest.raises(ParseError, match=r"truncated: the header says 1049 spectra, the file "
                                         r"ends in frame \d+"):
        chemstation_uv.parse(data, "DAD1.UV", NO_OPTIONS)


def test_result_xml_peaks_and_run_facts(folders: Path) -> None:
    parsed = parsers.parse((folders / "V181.D" / "Result.xml").read_bytes(), "Result.xml")
    (signal,) = parsed.signals
    assert signal.name == "FID1 A" and len(signal.peaks or []) == 36
    main = max(signal.peaks or [], key=lambda p: p.area_pct or 0)
    assert (main.rt_min, main.area, main.area_pct) == (1.004461, 103914.21875, 18.961434)
    assert signal.total_area == 548029.337851
    assert main.details == {"symmetry": 0.612489, "baseline_start": 8211.932617,
                            "baseline_end": 6245.57666, "amount": 18.9614335534,
                            "amount_unit": "%"}
    assert (parsed.sample_name, parsed.operator, parsed.vial, parsed.injection) == (
        "140+H", "SYSTEM", "4", 1)
    assert parsed.metadata["checksum"] == "c8f87ef45584d7078ed166679a86815b"


def test_aia_cdf_peaks_in_minutes_and_its_trace(corpus: Path) -> None:
    parsed = parsers.parse((corpus / "andi-aia" / "VARIAN1.CDF").read_bytes(), "VARIAN1.CDF")
    assert parsed.format == "andi-aia"
    (signal,) = parsed.signals
    peaks = signal.peaks or []
    assert len(peaks) == 8
    main = max(peaks, key=lambda p: p.area_pct or 0)
    assert (round(main.rt_min, 4), round(main.area_pct or 0, 4)) == (5.6972, 25.1679)
    assert all(p.height is None for p in peaks)  # -1 in the file: not measured
    assert signal.trace is not None and signal.trace.points == 1302
    assert signal.trace.value_unit == "AU" and signal.detector == "9065 UV-DAD"
    step = signal.trace.times[1] - signal.trace.times[0]
    assert step * 60 == pytest.approx(0.3686296, abs=1e-6)
    assert parsed.sample_name == "Test Chromatogram" and parsed.operator == "MEA"


@pytest.mark.parametrize("keep", [100, 2000, 7000, 7800])
def test_a_truncated_cdf_is_rejected_with_a_reason(corpus: Path, keep: int) -> None:
    data = (corpus / "andi-aia" / "VARIAN1.CDF").read_bytes()[:keep]
    with pytest.raises(ParseError, match="truncated or damaged"):
        parsers.parse(data, "VARIAN1.CDF")


def test_an_ms_only_aia_file_is_rejected_saying_so() -> None:
    ds = netCDF4.Dataset("ms.cdf", "w", format="NETCDF3_CLASSIC", memory=4096)
    ds.createDimension("point_number", 3)
    ds.createDimension("scan_number", 1)
    for name in ("mass_values", "intensity_values"):
        ds.createVariable(name, "f4", ("point_number",))[:] = [1.0, 2.0, 3.0]
    ds.createVariable("scan_index", "i4", ("scan_number",))[:] = [0]
    data = bytes(ds.close())
    assert andi_aia.sniff(data, "ms.cdf", NO_OPTIONS) >= 50
    with pytest.raises(ParseError, match=r"mass-spectrometry file .* MS data is not read"):
        parsers.parse(data, "ms.cdf")


def test_utf16_text_is_described_as_text_not_as_escaped_bytes(folders: Path) -> None:
    with pytest.raises(ParseError) as raised:
        parsers.parse((folders / "V181.D" / "acq.txt").read_bytes(), "acq.txt")
    assert 'text starting "Data File  : C:\\Users\\P' in raised.value.reason
    assert "\\x00" not in raised.value.reason and "\\xff" not in raised.value.reason


def test_version_field_is_read_from_the_first_bytes_only() -> None:
    assert chemstation_ch.sniff(b"\x03181" + bytes(400), "x.ch", NO_OPTIONS) == 98
    assert chemstation_ch.sniff(b"\x03999" + bytes(400), "x.ch", NO_OPTIONS) == 60
    assert chemstation_ch.sniff(b"\x03999" + bytes(400), "x.bin", NO_OPTIONS) == 0
