"""``accu-ingest service install``: a systemd unit, or on Windows a WinSW configuration.

The unit runs the ``accu-ingest`` of the virtual environment this command runs from, with an
absolute ``--config``, as ``Type=notify`` (the worker says READY=1 once its consumers run, pings
the watchdog while it progresses, says STOPPING=1 and asks for more time while files in flight
finish; see runtime/sdnotify.py). SIGTERM stops it gracefully: files in flight finish within the
consumer's 60 s shutdown timeout, so systemd waits 90 s before it kills. A system unit runs as a
dedicated account (``--user-account``) with the file system read-only but for the inbox and the
data folder.

On Windows (or with ``--windows``, to prepare or test one elsewhere) it writes the XML of WinSW
2.12, a service wrapper: WinSW's 3.x XML differs (no ``stopparentprocessfirst``, ``username``
instead of ``domain`` and ``user``), so the version is pinned here and in the file.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

from worker.cli import winsw
from worker.cli.options import command, common
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


def writable_paths(settings: Settings, workdir: Path) -> list[Path]:
    """What the service writes: the inbox (files leave it) and the data folder, plus the audit
    key, anchor and SQLite files where the settings put them elsewhere."""
    paths = [settings.inbox, settings.data_dir, settings.audit_key_path.parent,
             settings.audit_anchor_path.parent]
    for url in (settings.database, settings.queue):
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            paths.append(Path(url[len("sqlite:///"):]).parent)
    found: list[Path] = []
    for path in paths:
        path = path if path.is_absolute() else workdir / path
        if not any(path == f or f in path.parents for f in found):
            found = [f for f in found if path not in f.parents] + [path]
    return found


def _hardening(account: str, writable: list[Path]) -> str:
    paths = " ".join(_quote(str(p)) for p in writable)
    return f"""\
User={account}
Group={account}
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths={paths}
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
"""


def render(config: Path, workdir: Path, user: bool, description: str | None = None,
           account: str | None = None, writable: list[Path] | None = None) -> str:
    """The unit file text; a system unit with ``account`` runs as it, hardened."""
    command = " ".join(_quote(a) for a in [*executable(), "run", "--config", str(config)])
    wanted_by = "default.target" if user else "multi-user.target"
    hardening = _hardening(account, writable or [workdir]) if account and not user else ""
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
{hardening}
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
    p = command(sub, "service", "install the worker as a service (systemd; WinSW on Windows)",
                """
Write what runs the worker unattended: on Linux a hardened systemd unit (Type=notify, a
dedicated account, restart on failure), on Windows (or with --windows) a WinSW 2.12
configuration. The service reads its settings from --config, which is required.
""", """
  sudo accu-ingest service install --config /etc/accu-ingest/accu-ingest.toml
  accu-ingest service install --config accu-ingest.toml --print
  accu-ingest service install --user --config ~/accu-ingest.toml
  accu-ingest service install --windows --config C:/ProgramData/accu-ingest/accu-ingest.toml
""")
    common(p)
    p.add_argument("action", choices=["install"], help="what to do: install")
    p.add_argument("--user", action="store_true",
                   help="a user unit (~/.config/systemd/user) instead of a system one")
    p.add_argument("--print", "--dry-run", dest="dry_run", action="store_true",
                   help="print the unit instead of writing it")
    p.add_argument("--unit-dir", type=Path, metavar="DIR",
                   help="write the unit into DIR instead of systemd's folder")
    p.add_argument("--name", default=NAME, metavar="NAME",
                   help="unit (service) name (default accu-ingest)")
    p.add_argument("--user-account", default=NAME, metavar="NAME",
                   help="the account the service runs as (default accu-ingest); on Windows "
                   r"DOMAIN\name, a gMSA (DOMAIN\name$) or NT AUTHORITY\LocalService")
    p.add_argument("--create-account", action="store_true",
                   help="create the Linux system account now (useradd) instead of printing "
                   "the command")
    p.add_argument("--windows", action="store_true",
                   help="write the WinSW configuration (the default on Windows)")
    p.add_argument("--install-dir", metavar="WINDOWS_PATH",
                   help="with --windows elsewhere: the folder on the Windows PC that will hold "
                   "the config (default: the config's folder)")
    p.add_argument("--executable", metavar="WINDOWS_PATH",
                   help="with --windows: the accu-ingest.exe the service runs (default: the one "
                   "of this Python)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.config is None:
        print("accu-ingest: service install needs --config FILE: the service reads its settings "
              "from that file", file=sys.stderr)
        return 2
    if os.name == "nt" or args.windows:
        return winsw.install(settings, args)
    config = args.config.resolve()
    account = None if args.user else args.user_account
    text = render(config, config.parent, args.user, account=account,
                  writable=writable_paths(settings, config.parent))
    if args.dry_run:
        print(text, end="")
        return 0
    folder = args.unit_dir or unit_dir(args.user)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{args.name}.service"
    path.write_text(text, encoding="utf-8")
    print(_audit_key(settings, config.parent))
    if account is not None and _account_step(account, args.create_account,
                                             writable_paths(settings, config.parent)):
        return 2
    ctl = "systemctl --user" if args.user else "systemctl"
    print(f"wrote {path}\nnow run:\n  {ctl} daemon-reload\n  {ctl} enable --now {args.name}\n"
          f"  {ctl} status {args.name}\n  journalctl {'--user ' if args.user else ''}"
          f"-u {args.name} -f")
    return 0


def useradd(account: str) -> list[str]:
    return ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
            "/nonexistent", "--shell", "/usr/sbin/nologin", account]


def _account_step(account: str, create: bool, writable: list[Path]) -> bool:
    """Print (or, asked to, run) what gives the service its account and its folders; True
    when creating the account failed."""
    command = useradd(account)
    chown = ["chown", "-R", f"{account}:{account}", *map(str, writable)]
    if create:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode not in (0, 9):  # 9: the account exists already
            print(f"accu-ingest: {shlex.join(command)} failed: {done.stderr.strip()}",
                  file=sys.stderr)
            return True
        print(f"account {account}: ready")
    else:
        print(f"the unit runs as {account}; create that account (once, as root):\n"
              f"  {shlex.join(command)}")
    print(f"and let it write the inbox and the data folder:\n  {shlex.join(chown)}")
    return False


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

