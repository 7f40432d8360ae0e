"""Settings: layers in the documented order, and bad values stop start-up with a clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from worker.settings import SettingsError, load


def test_layers_options_over_environment_over_file(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('port = 9001\nworkers = 3\nstable_seconds = 4.5\nafter_ingest = "keep"\n')
    monkeypatch.setenv("ACCU_INGEST_WORKERS", "5")
    monkeypatch.setenv("ACCU_INGEST_STABLE_SECONDS", "2")
    settings = load(config, stable_seconds=7.0, port=None)
    assert settings.port == 9001            # file
    assert settings.workers == 5            # environment over file
    assert settings.stable_seconds == 7.0   # option over environment
    assert settings.after_ingest == "keep"
    assert settings.database == f"sqlite:///{Path('data') / 'accu-ingest.db'}"


@pytest.mark.parametrize(("toml", "words"), [
    ('port = "eighty"', "port"),
    ('after_ingest = "archive"', "after_ingest"),
    ('database_url = "mysql://x"', "database_url"),
    ('stable_secs = 2', "'stable_secs' is not a setting"),
])
def test_bad_values_name_the_setting(tmp_path: Path, toml: str, words: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(toml + "\n")
    with pytest.raises(SettingsError) as err:
        load(config)
    assert words in str(err.value)


def test_cli_exits_2_with_the_message_and_no_traceback(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("workers = 0\n")
    done = subprocess.run([sys.executable, "-m", "worker", "status", "--config", str(config)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert "workers" in done.stderr and "ACCU_INGEST_WORKERS" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load(tmp_path / "nope.toml")
