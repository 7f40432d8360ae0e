"""An operator's mistakes get one sentence naming the fix and exit 2, never a traceback, and
never a quiet lie (an empty database created in the wrong folder, a mistyped inbox watched)."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support.corpus import corpus_dir
from support.workers import free_port

from worker.cli import doctor
from worker.cli.main import build_parser
from worker.settings import Settings

TIMEOUT = 60


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ACCU_INGEST_")}
    return subprocess.run([sys.executable, "-m", "worker", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=TIMEOUT, env={**clean, **(env or {})})


def one_sentence(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("accu-ingest: "), result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_status_port_in_use_is_named_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("run", "--port", str(port), cwd=tmp_path)
    one_sentence(result, f"status port 127.0.0.1:{port} is not free", "--port")
    assert not (tmp_path / "data" / "accu-ingest.db").exists()  # nothing was started


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "data").write_text("not a folder")
    one_sentence(cli("run", cwd=tmp_path), "data directory data is a file", "--data-dir")
    one_sentence(cli("status", cwd=tmp_path), "is a file")


def test_unwritable_data_dir(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    if os.geteuid() == 0:  # root writes anywhere a mode allows: /sys refuses even root
        if not Path("/sys").is_dir():
            pytest.skip("running as root without /sys: no folder root cannot write")
        data = Path("/sys/accu-ingest-test/data")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        data = locked / "data"
    result = cli("run", "--data-dir", str(data), cwd=tmp_path)
    one_sentence(result, f"cannot create the data directory {data}", "--data-dir")


@pytest.mark.parametrize("command", [["results"], ["export", "--what", "peaks"]])
def test_closed_pipe_ends_quietly(tmp_path: Path, command: list[str]) -> None:
    """`accu-ingest results | head`: the reader went away; no traceback on the terminal."""
    sample = corpus_dir() / "shimadzu-labsolutions"
    assert cli("ingest", str(sample), cwd=tmp_path).returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCU_INGEST_")}
    proc = subprocess.Popen([sys.executable, "-m", "worker", *command], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # as `head` does once it has its lines: every write now fails
    err = proc.stderr.read().decode()
    assert proc.wait(TIMEOUT) == 141  # as a program killed by SIGPIPE: the shell's convention
    assert err == ""


@pytest.mark.parametrize("command", [["status"], ["results"], ["audit", "verify"],
                                     ["export"], ["calibration", "job"], ["retry", "1"]])
def test_read_commands_refuse_to_create_a_database(tmp_path: Path, command: list[str]) -> None:
    result = cli(*command, cwd=tmp_path)
    one_sentence(result, "no database at", "--data-dir", "run from the folder")
    assert not (tmp_path / "data").exists()  # no empty database "intact: 0 events"


def test_mistyped_inbox_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    result = cli("run", "--inbox", "inbx", cwd=tmp_path)
    one_sentence(result, "inbox", "inbx does not exist", "--inbox", "create_inbox = true")
    assert not (tmp_path / "inbx").exists()


def test_create_inbox_creates_it(tmp_path: Path) -> None:
    settings = Settings(inbox=tmp_path / "new" / "inbox", data_dir=tmp_path / "data", port=0,
                        create_inbox=True)
    doctor.before(settings, "run")
    assert (tmp_path / "new" / "inbox").is_dir()
    with pytest.raises(doctor.Problem, match="does not exist"):
        doctor.before(settings.model_copy(update={"inbox": tmp_path / "x",
                                                  "create_inbox": False}), "run")


def test_mistyped_environment_variable_is_named(tmp_path: Path) -> None:
    result = cli("status", cwd=tmp_path, env={"ACCU_INGEST_STABLE_SECOND": "3"})
    one_sentence(result, "ACCU_INGEST_STABLE_SECOND is not a setting",
                 "ACCU_INGEST_STABLE_SECONDS")


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_advice_names_only_places_that_exist(tmp_path: Path) -> None:
    result = cli("status", "--config", config(tmp_path, 'stable_seconds = -1\n'
                                                         'after_ingest = "zap"\n'), cwd=tmp_path)
    one_sentence(result, "ACCU_INGEST_STABLE_SECONDS", "ACCU_INGEST_AFTER_INGEST")
    assert "--stable-seconds" not in result.stderr and "--after-ingest" not in result.stderr


def test_unknown_key_in_a_method_table_is_named(tmp_path: Path) -> None:
    result = cli("status", "--config", config(tmp_path, "[methods.default]\nmin_rr = 0.9\n"),
                 cwd=tmp_path)
    one_sentence(result, "'min_rr' is not a setting of the [methods.default] table")
    assert "'methods' is not a setting" not in result.stderr


def test_windows_path_in_double_quotes_gets_the_fix(tmp_path: Path) -> None:
    result = cli("status", "--config", config(tmp_path, 'inbox = "C:\\Lab\\inbox"\n'),
                 cwd=tmp_path)
    one_sentence(result, "line 1", "single quotes")


def test_no_secret_on_the_command_line(tmp_path: Path) -> None:
    result = cli("run", "--queue-secret", "s3cret", cwd=tmp_path)
    assert result.returncode == 2 and "unrecognized arguments: --queue-secret" in result.stderr
    for name in ("run", "watch", "consume", "status", "service"):
        assert "secret" not in cli(name, "--help", cwd=tmp_path).stdout.replace(
            "Secrets (queue_secret, audit_key) are read only from the file or the\n"
            "environment, never from the command line.", "")


def subcommands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions
               if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_command_has_a_description_examples_and_option_help(name: str) -> None:
    parser = subcommands()[name]
    assert parser.description and len(parser.description) > 60
    assert parser.epilog and parser.epilog.startswith("examples:\n  ")
    assert f"accu-ingest {name}" in parser.epilog
    for action in parser._actions:
        assert action.help, f"{name}: {action.option_strings or action.dest} has no help"
    assert "`" not in parser.format_help()  # plain text, not reStructuredText


def test_top_help_reads_as_plain_text(tmp_path: Path) -> None:
    out = cli("--help", cwd=tmp_path).stdout
    assert "`" not in out and "examples:" in out and "doctor" in out


def test_doctor_healthy_and_broken(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()  # as a fresh clone has it (inbox/.gitkeep)
    healthy = cli("doctor", "--port", "0", cwd=tmp_path)
    assert healthy.returncode == 0, healthy.stdout
    assert healthy.stdout.rstrip().endswith("healthy")
    (tmp_path / "data").write_text("")
    broken = cli("doctor", "--port", "0", "--inbox", "inbx", cwd=tmp_path)
    assert broken.returncode == 1
    assert "PROBLEM  inbox:" in broken.stdout and "PROBLEM  data directory:" in broken.stdout
    assert "2 problem(s)" in broken.stdout


def test_doctor_names_unreachable_servers(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    closed = free_port()  # nothing listens there: refused at once
    result = cli("doctor", "--port", "0",
                 "--database-url", f"postgresql://postgres@127.0.0.1:{closed}/test",
                 "--queue-url", f"redis://127.0.0.1:{closed}/0", cwd=tmp_path,
                 env={"ACCU_INGEST_QUEUE_SECRET": "s3cret"})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "PROBLEM  database:" in result.stdout and "PROBLEM  queue:" in result.stdout
    assert "ok       clock: nothing recorded yet" in result.stdout
