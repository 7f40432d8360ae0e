"""The Windows service: a WinSW 2.12 configuration, written and checked on any system with
Windows path rules (drive letters, UNC shares, names Windows forbids)."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path, PureWindowsPath

import pytest
from support.workers import write_config

from worker.cli import winsw


def install(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    config = write_config(tmp_path, inbox="//labsrv/exports/hplc1", data_dir="data")
    return subprocess.run([sys.executable, "-m", "worker", "service", "install", "--windows",
                           "--config", str(config), *extra], capture_output=True, text=True,
                          timeout=60)


def test_the_winsw_configuration_stops_the_parent_first_and_rolls_its_log_by_size(
        tmp_path: Path) -> None:
    done = install(tmp_path, "--install-dir", r"C:\accu", "--user-account", r"LAB\svc-accu",
                   "--executable", r"C:\Program Files\Python312\Scripts\accu-ingest.exe")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "accu-ingest.xml").read_text()
    assert "WinSW 2.12.0" in text
    xml = ET.fromstring(text)
    assert xml.findtext("stopparentprocessfirst") == "true"
    assert xml.findtext("stoptimeout") == "90 sec"
    assert [f.get("action") for f in xml.findall("onfailure")] == ["restart"] * 3
    assert [f.get("delay") for f in xml.findall("onfailure")] == ["10 sec", "30 sec", "60 sec"]
    log = xml.find("log")
    assert log is not None and log.get("mode") == "roll-by-size"
    assert xml.findtext("logpath") == r"C:\accu\data\logs\service"
    assert xml.findtext("executable") == r"C:\Program Files\Python312\Scripts\accu-ingest.exe"
    assert xml.findtext("arguments") == r'run --config "C:\accu\accu-ingest.toml"'
    assert xml.findtext("workingdirectory") == r"C:\accu"
    assert xml.findtext("serviceaccount/domain") == "LAB"
    assert xml.findtext("serviceaccount/user") == "svc-accu"
    assert xml.find("serviceaccount/password") is None  # typed at install, never stored
    assert r"& 'C:\accu\accu-ingest.exe' install /p" in done.stdout
    assert r"& 'C:\accu\accu-ingest.exe' start" in done.stdout
    assert r"Modify on \\labsrv\exports\hplc1" in done.stdout


def test_a_gmsa_needs_no_password_and_a_unc_install_folder_is_kept(tmp_path: Path) -> None:
    done = install(tmp_path, "--install-dir", r"\\labsrv\tools\accu", "--user-account",
                   r"LAB\gmsa-accu$", "--print")
    assert done.returncode == 0, done.stderr
    xml = ET.fromstring(done.stdout)
    assert xml.findtext("arguments") == r'run --config "\\labsrv\tools\accu\accu-ingest.toml"'
    assert "install /p" not in done.stdout and "password" not in done.stdout


@pytest.mark.parametrize("name", ["CON", "nul.svc", "LPT1", "a:b", "acc|u", "trailing.", ""])
def test_names_windows_forbids_are_refused(tmp_path: Path, name: str) -> None:
    assert winsw.service_name_problem(name) is not None
    done = install(tmp_path, "--install-dir", r"C:\accu", "--name", name)
    assert done.returncode == 2 and "--name" in done.stderr
    assert not list(tmp_path.glob("*.xml"))


def test_windows_paths_drive_letters_and_shares() -> None:
    base = PureWindowsPath(r"D:\lab\accu")
    assert winsw.windows_path("data", base) == PureWindowsPath(r"D:\lab\accu\data")
    assert winsw.windows_path(r"E:\exports", base) == PureWindowsPath(r"E:\exports")
    assert winsw.windows_path("//srv/share/in", base) == PureWindowsPath(r"\\srv\share\in")
    for ambiguous in (r"C:relative", r"\no-drive"):
        with pytest.raises(winsw.WindowsPathError):
            winsw.windows_path(ambiguous, base)
    assert winsw.account_parts(r"LAB\svc") == ("LAB", "svc")
    assert winsw.account_parts("svc@lab.example") == ("lab.example", "svc")
    assert winsw.account_parts("svc") == (".", "svc")
    assert not winsw.needs_password(r"NT AUTHORITY\LocalService")


def test_outside_windows_the_install_folder_must_be_named(tmp_path: Path) -> None:
    done = install(tmp_path)
    assert done.returncode == 2 and "--install-dir" in done.stderr
