"""``accu-ingest service install``: a systemd unit for this installation.

The unit runs the ``accu-ingest`` of the virtual environment this command runs from, with an
absolute ``--config``, as ``Type=notify`` (the worker says READY=1 once its parts run, pings the
watchdog, says STOPPING=1; see runtime/sdnotify.py). SIGTERM stops it gracefully: files in
flight finish within the consumer's 60 s shutdown timeout, so systemd waits 90 s before it kills.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from worker.cli.options import common
from worker.settings import Settings

NAME = "accu-ingest"
WATCHDOG_SEC = 60
STOP_TIMEOUT_SEC = 90


def executable() -> list[str]:
    """The console script beside this interpreter, else the interpreter running the package."""
    script = Path(sys.executable).parent / ("accu-ingest.exe" if os.name == "nt" else NAME)
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "worker"]


def _quote(arg: str) -> str:
    """One ExecStart word: '%' doubled (systemd specifiers), quoted when it holds spaces."""
    arg = arg.replace("%", "%%")
    if any(c in arg for c in " \t\"'\\;"):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def render(config: Path, workdir: Path, user: bool, description: str | None = None) -> str:
    """The unit file text."""
    command = " ".join(_quote(a) for a in [*executable(), "run", "--config", str(config)])
    wanted_by = "default.target" if user else "multi-user.target"
    return f"""\
[Unit]
Description={description or "accu-ingest: instrument exports to audited database rows"}
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={command}
WorkingDirectory={_quote_path(workdir)}
Restart=on-failure
RestartSec=5
WatchdogSec={WATCHDOG_SEC}
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec={STOP_TIMEOUT_SEC}
Environment=PYTHONUNBUFFERED=1

[Install]
WantedBy={wanted_by}
"""


def _quote_path(path: Path) -> str:
    return str(path).replace("%", "%%")


def unit_dir(user: bool) -> Path:
    if user:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        return base / "systemd" / "user"
    return Path("/etc/systemd/system")


NAMES = ("service",)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("service", help="install the worker as a systemd service")
    common(p)
    p.add_argument("action", choices=["install"])
    p.add_argument("--user", action="store_true", help="a user unit (~/.config/systemd/user)")
    p.add_argument("--print", "--dry-run", dest="dry_run", action="store_true",
                   help="print the unit instead of writing it")
    p.add_argument("--unit-dir", type=Path, help="write the unit here instead")
    p.add_argument("--name", default=NAME, help="unit name (default accu-ingest)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.config is None:
        print("accu-ingest: service install needs --config FILE: the service reads its settings "
              "from that file", file=sys.stderr)
        return 2
    if os.name == "nt":
        print("accu-ingest: systemd is for Linux; on Windows see the README (WinSW or NSSM)",
              file=sys.stderr)
        return 2
    config = args.config.resolve()
    text = render(config, config.parent, args.user)
    if args.dry_run:
        print(text, end="")
        return 0
    folder = args.unit_dir or unit_dir(args.user)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{args.name}.service"
    path.write_text(text, encoding="utf-8")
    print(_audit_key(settings, config.parent))
    ctl = "systemctl --user" if args.user else "systemctl"
    print(f"wrote {path}\nnow run:\n  {ctl} daemon-reload\n  {ctl} enable --now {args.name}\n"
          f"  {ctl} status {args.name}\n  journalctl {'--user ' if args.user else ''}"
          f"-u {args.name} -f")
    return 0


def _audit_key(settings: Settings, workdir: Path) -> str:
    """Create the audit trail's key now (never overwriting one), where the service will look:
    relative paths are the unit's working directory's."""
    if settings.audit_key is not None:
        return "audit key: audit_key is set in the settings"
    from worker.record import audit, keys

    path = settings.audit_key_path
    path = path if path.is_absolute() else workdir / path
    key = keys.load_or_create(path)
    return (f"audit key {path} (fingerprint {audit.fingerprint(key)}, mode 0600): the service "
            "account must be able to read it (chown it to the unit's User=), nobody else")

