"""The Windows service: a configuration for WinSW 2.12 (https://github.com/winsw/winsw, the
v2 XML) beside a copy of WinSW renamed to the service's name.

WinSW sends the worker Ctrl+C (``stopparentprocessfirst``), which stops it as gracefully as
SIGTERM: the parent tells its consumer processes to finish the files in flight, and WinSW waits
``stoptimeout`` before it kills what is left. Killing the consumers first, as WinSW does without
that element, cut them off mid-file. Paths are Windows paths (PureWindowsPath) whatever the
system this runs on, so the file can be prepared and tested on Linux.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import PureWindowsPath
from xml.sax.saxutils import escape

from worker.settings import Settings

WINSW_VERSION = "2.12.0"
STOP_TIMEOUT_SEC = 90  # the consumers' 60 s shutdown timeout, and their exit
RESTART_DELAYS = ("10 sec", "30 sec", "60 sec")  # after the 1st, 2nd, 3rd and later failures
LOG_KIB = 10240  # WinSW's own log of the worker's stderr, rolled at this size
LOG_KEEP = 8

# Windows refuses these as file names (the wrapper is <name>.exe beside <name>.xml).
RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
            *(f"LPT{i}" for i in range(1, 10))}
FORBIDDEN = re.compile(r'[<>:"/\\|?*\x00-\x1f]')


class WindowsPathError(ValueError):
    pass


def service_name_problem(name: str) -> str | None:
    """Why Windows cannot have a service wrapper of this name, or None."""
    if not name or name.strip() != name or name.endswith("."):
        return f"{name!r}: a service name cannot be empty or end in a space or a dot"
    bad = FORBIDDEN.search(name)
    if bad:
        return f"{name!r}: Windows forbids {bad.group()!r} in a file name"
    if name.split(".")[0].upper() in RESERVED:
        return f"{name!r}: {name.split('.')[0].upper()} is a device name Windows reserves"
    if len(name) > 80:
        return f"{name!r}: longer than 80 characters"
    return None


def windows_path(text: str | os.PathLike[str], base: PureWindowsPath | None = None
                 ) -> PureWindowsPath:
    """``text`` as a Windows path: absolute (``C:\\...`` or a UNC share ``\\\\server\\share``)
    as it is, relative under ``base``. A path with only a drive or only a root is ambiguous on
    Windows (it depends on the current drive or folder), so it is refused."""
    path = PureWindowsPath(os.fspath(text))
    if path.is_absolute():
        return path
    if path.drive or path.root:
        raise WindowsPathError(f"{path}: give the whole path, with its drive and its root "
                               r"(C:\... or \\server\share\...)")
    if base is None:
        raise WindowsPathError(f"{path}: not an absolute Windows path")
    return base / path


def account_parts(account: str) -> tuple[str, str]:
    r"""(domain, user) of ``DOMAIN\user``, ``user@domain`` or a local ``user`` (domain ``.``)."""
    if "\\" in account:
        domain, user = account.split("\\", 1)
        return domain, user
    if "@" in account:
        user, domain = account.split("@", 1)
        return domain, user
    return ".", account


def needs_password(account: str) -> bool:
    """A gMSA (name ending in $) and the built-in service accounts have no password to type."""
    domain, user = account_parts(account)
    return not user.endswith("$") and domain.upper() not in ("NT AUTHORITY", "NT SERVICE")


def render(name: str, exe: PureWindowsPath, config: PureWindowsPath, logs: PureWindowsPath,
           account: str) -> str:
    """The WinSW 2.12 XML."""
    domain, user = account_parts(account)
    arguments = f'run --config "{config}"'
    delays = "\n".join(f'  <onfailure action="restart" delay="{d}"/>' for d in RESTART_DELAYS)
    password = ("\n    <!-- no password here: `install /p` asks for it, and Windows keeps it -->"
                if needs_password(account) else "")
    return f"""\
<!-- WinSW {WINSW_VERSION} configuration (the 2.x XML; WinSW 3.x reads another) for accu-ingest.
     Put WinSW-x64.exe {WINSW_VERSION} beside this file, renamed {escape(name)}.exe. -->
<service>
  <id>{escape(name)}</id>
  <name>{escape(name)}</name>
  <description>accu-ingest: instrument exports to audited database rows</description>
  <executable>{escape(str(exe))}</executable>
  <arguments>{escape(arguments)}</arguments>
  <workingdirectory>{escape(str(config.parent))}</workingdirectory>
  <startmode>Automatic</startmode>
  <env name="PYTHONUNBUFFERED" value="1"/>
  <env name="PYTHONUTF8" value="1"/>
  <!-- Ctrl+C to the worker first: it stops its consumer processes gracefully itself. -->
  <stopparentprocessfirst>true</stopparentprocessfirst>
  <stoptimeout>{STOP_TIMEOUT_SEC} sec</stoptimeout>
{delays}
  <resetfailure>1 hour</resetfailure>
  <logpath>{escape(str(logs))}</logpath>
  <log mode="roll-by-size">
    <sizeThreshold>{LOG_KIB}</sizeThreshold>
    <keepFiles>{LOG_KEEP}</keepFiles>
  </log>
  <serviceaccount>
    <domain>{escape(domain)}</domain>
    <user>{escape(user)}</user>
    <allowservicelogon>true</allowservicelogon>{password}
  </serviceaccount>
</service>
"""


def default_executable() -> PureWindowsPath:
    return PureWindowsPath(sys.executable).parent / "accu-ingest.exe"


def install(settings: Settings, args: argparse.Namespace) -> int:
    """Write ``<name>.xml`` and print the commands that install and start the service."""
    problem = service_name_problem(args.name)
    if problem:
        print(f"accu-ingest: --name {problem}", file=sys.stderr)
        return 2
    try:
        if args.install_dir:
            folder = windows_path(args.install_dir)
        elif os.name == "nt":
            folder = PureWindowsPath(args.config.resolve().parent)
        else:
            raise WindowsPathError("--windows outside Windows needs --install-dir: the folder "
                                   "on the Windows PC that holds the config")
        config = folder / args.config.name
        exe = windows_path(args.executable) if args.executable else default_executable()
        data = windows_path(settings.data_dir, folder)
        inbox = windows_path(settings.inbox, folder)
    except WindowsPathError as exc:
        print(f"accu-ingest: {exc}", file=sys.stderr)
        return 2
    account = args.user_account
    if account == "accu-ingest":  # the Linux default: a local account of that name
        account = ".\\accu-ingest"
    text = render(args.name, exe, config, data / "logs" / "service", account)
    if args.dry_run:
        print(text, end="")
        return 0
    out = args.unit_dir or args.config.resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.name}.xml"
    path.write_text(text, encoding="utf-8")
    wrapper = folder / f"{args.name}.exe"
    password = " /p" if needs_password(account) else ""
    print(f"wrote {path} (WinSW {WINSW_VERSION})\n"
          f"put WinSW-x64.exe {WINSW_VERSION} beside it as {wrapper}, then in an "
          f"administrator's PowerShell:\n"
          f"  & '{wrapper}' install{password}\n"
          f"  & '{wrapper}' start\n"
          f"the account {account} needs: Modify on {inbox} (NTFS and, on a share, the share's "
          f"permission) and on {data}; Read on {exe.parent.parent} (Python installed for all "
          f"users).")
    return 0
