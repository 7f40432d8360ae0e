"""``accu-ingest doctor``, and the checks every command makes before it starts anything.

A mistake an operator can make (a mistyped inbox, an unwritable data folder, a port in use,
running a read command from the wrong folder) is answered with one sentence that names the
fix, before the database, the watcher or the queue is touched: a start that fails half-way
leaves threads and files behind and a traceback that hides the cause. ``doctor`` runs the same
checks plus those a start makes later (database, migrations, queue, disk, clock, the unit).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

from worker.cli.options import command, common
from worker.settings import Settings

NAMES = ("doctor",)
SERVE = ("run", "watch", "consume")
# Commands that only read the database: they must not create an empty one in the wrong folder
# and then report "0 events, intact".
READERS = ("status", "results", "calibration", "audit", "export", "retry", "backup")


class Problem(Exception):
    """A mistake in the installation or the command line; the message names the fix."""


def data_dir(settings: Settings, create: bool) -> None:
    folder = settings.data_dir
    if folder.exists() and not folder.is_dir():
        raise Problem(f"data directory {folder} is a file, not a folder: pass --data-dir with a "
                      "folder (or move the file away)")
    if not folder.exists():
        if not create:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Problem(f"cannot create the data directory {folder} ({exc.strerror}): pass "
                          "--data-dir with a folder this account can write, or create it and "
                          "give this account write access") from None
    probe = folder / f".write-test-{uuid.uuid4().hex}"
    try:  # os.access is not enough: ACLs, read-only mounts and root all answer it wrongly
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise Problem(f"data directory {folder} is not writable ({exc.strerror}): give this "
                      "account write access to it, or pass --data-dir with another "
                      "folder") from None


def inbox(settings: Settings) -> None:
    folder = settings.inbox
    if folder.exists() and not folder.is_dir():
        raise Problem(f"inbox {folder} is a file, not a folder: pass --inbox with the folder the "
                      "instrument exports into")
    if not folder.exists():
        if settings.create_inbox:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise Problem(f"cannot create the inbox {folder} ({exc.strerror}): create it "
                              "yourself or pass --inbox with an existing folder") from None
            return
        raise Problem(f"inbox {folder.absolute()} does not exist: pass --inbox with the folder "
                      "the instrument exports into, or set create_inbox = true to create it")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise Problem(f"inbox {folder} is not readable by this account: give it read access "
                      "(and write access, to move files out after ingest)")


def port(settings: Settings) -> None:
    if settings.port == 0:
        return
    try:
        infos = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise Problem(f"status address {settings.host} does not resolve ({exc}): pass --host "
                      "with an address of this machine (default 127.0.0.1)") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        if os.name != "nt":  # as the status server binds: a port in TIME_WAIT is free
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as exc:
            raise Problem(f"status port {settings.host}:{settings.port} is not free "
                          f"({exc.strerror}; another accu-ingest?): stop what uses it, or pass "
                          "--port with a free port (0 = any)") from None


def database_exists(settings: Settings) -> None:
    """A reading command in the wrong folder would otherwise create an empty database."""
    if not settings.embedded_database:
        return
    path = Path(settings.database[len("sqlite:///"):])
    if not path.is_file():
        raise Problem(f"no database at {path.absolute()}: pass --data-dir (or --config) naming "
                      "the installation, or run from the folder that holds its data/")


def before(settings: Settings, name: str) -> None:
    """The checks ``name`` needs before it starts anything; raises Problem."""
    if name in SERVE:
        if name != "consume":
            inbox(settings)
        data_dir(settings, create=True)
        port(settings)
    elif name in READERS:
        data_dir(settings, create=False)
        database_exists(settings)
    elif name in ("ingest", "restore"):
        data_dir(settings, create=True)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = command(sub, "doctor", "check the installation and say what to fix", """
Run every check a start would — settings, inbox and data folder and their permissions, a
free status port, the database and its migrations, the queue, free disk, the clock, the
systemd unit if installed — and print what to fix. Starts nothing, changes nothing.
Exit 0 when healthy, 1 when there are problems, 2 when the settings cannot be read.""", """
  accu-ingest doctor
  accu-ingest doctor --config /etc/accu-ingest.toml
  accu-ingest doctor --port 8010   # a second worker on this machine""")
    common(p)
    p.add_argument("--host", metavar="ADDR", help="status endpoint address to check")
    p.add_argument("--port", type=int, help="status endpoint port to check")
    p.add_argument("--role", choices=SERVE, default="run",
                   help="the command you will start (default run): consume needs no inbox")


def run(settings: Settings, args: argparse.Namespace) -> int:
    schema: list[int] = []  # the database's version, once the database check opened it
    checks: list[tuple[str, Callable[[], str]]] = [
        ("settings", lambda: "read"),
        ("inbox", lambda: _ok(inbox, settings, f"{settings.inbox} exists")
         if args.role != "consume" else "not needed by consume"),
        ("data directory", lambda: _ok(lambda s: data_dir(s, create=False), settings,
                                       f"{settings.data_dir} writable")
         if settings.data_dir.exists() else f"{settings.data_dir} will be created"),
        ("status port", lambda: _ok(port, settings, f"{settings.host}:{settings.port} free")),
        ("database", lambda: _database(settings, schema)),
        ("queue", lambda: _queue(settings)),
        ("disk", lambda: _disk(settings)),
        ("clock", lambda: _clock(schema)),
        ("service unit", _unit),
    ]
    problems = 0
    for name, check in checks:
        try:
            print(f"ok       {name}: {check()}")
        except Problem as exc:
            problems += 1
            print(f"PROBLEM  {name}: {exc}")
        except Exception as exc:  # a check that breaks is a finding too, not a traceback
            problems += 1
            print(f"PROBLEM  {name}: {type(exc).__name__}: {exc}")
    print("healthy" if not problems else
          f"{problems} problem(s): fix and run accu-ingest doctor again")
    return 1 if problems else 0


def _ok(check: Callable[[Settings], None], settings: Settings, said: str) -> str:
    check(settings)
    return said


def _database(settings: Settings, schema: list[int]) -> str:
    from worker.record import db
    from worker.record.migrations import MIGRATIONS, current_version

    if settings.embedded_database:
        path = Path(settings.database[len("sqlite:///"):])
        if not path.is_file():
            return f"none yet at {path} (the first start creates it)"
    try:
        database = db.open_database(settings, migrate=False)
        have = current_version(database)
    except Exception as exc:
        raise Problem(f"{db.redact(settings.database)}: {exc}") from None
    schema.append(have)
    latest = MIGRATIONS[-1][0]
    if have > latest:
        raise Problem(f"schema version {have} is newer than this accu-ingest knows ({latest}): "
                      "upgrade accu-ingest")
    pending = f", {latest - have} migration(s) the next start applies" if have < latest else ""
    return f"{db.redact(settings.database)} schema {have}{pending}"


def _queue(settings: Settings) -> str:
    from worker.consume.queue import QueueUnavailable, open_queue
    from worker.record import db

    if not settings.queue_url:
        return "the embedded SQLite queue under the data directory"
    try:
        open_queue(settings).check()
    except (QueueUnavailable, Exception) as exc:
        raise Problem(str(exc)) from None
    return f"{db.redact(settings.queue)} answers"


def _disk(settings: Settings) -> str:
    folder = settings.data_dir
    while not folder.exists() and folder != folder.parent:
        folder = folder.absolute().parent
    free_mb = shutil.disk_usage(folder).free / 1024 / 1024
    if free_mb < settings.min_free_mb:
        raise Problem(f"{free_mb:,.0f} MB free under {folder}, below min_free_mb "
                      f"({settings.min_free_mb:g}): free space, or move --data-dir")
    return f"{free_mb:,.0f} MB free under {folder}"


def _clock(schema: list[int]) -> str:
    """Leases and the backlog age compare wall-clock times written by other processes."""
    from worker.record.models import SourceFile

    if not schema or schema[0] == 0:
        return "nothing recorded yet"
    latest = SourceFile.select().order_by(SourceFile.id.desc()).first()
    if latest is None:
        return "nothing recorded yet"
    ahead = latest.first_seen.replace(tzinfo=UTC).timestamp() - time.time()  # naive UTC
    if ahead > 60:
        raise Problem(f"the last file was registered {ahead:,.0f} s in the future: this "
                      "machine's clock is behind; enable time sync (timedatectl set-ntp true)")
    return "not behind the ledger"


def _unit() -> str:
    for folder in (Path("/etc/systemd/system"),
                   Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
                   / "systemd" / "user"):
        unit = folder / "accu-ingest.service"
        if not unit.is_file():
            continue
        text = unit.read_text(encoding="utf-8", errors="replace")
        start = next((line.split("=", 1)[1] for line in text.splitlines()
                      if line.startswith("ExecStart=")), "")
        program = start.split()[0].strip('"') if start.split() else ""
        if not program or not Path(program).is_file():
            raise Problem(f"{unit} starts {program or 'nothing'}, which does not exist: run "
                          "accu-ingest service install again from the right environment")
        if "--queue-secret" in start:
            raise Problem(f"{unit} has a secret on its command line: move it to the config "
                          "file or an Environment= line and install the unit again")
        return f"{unit} runs {program}"
    return "not installed (see accu-ingest service install)"
