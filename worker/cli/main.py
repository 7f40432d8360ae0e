"""The ``accu-ingest`` command: one module per command in this folder, dispatched from here.

``run``, ``watch`` and ``consume`` read their settings before peewee and Huey are imported:
those import every database and queue client library installed, and drivers.py leaves out the
ones the settings do not use. The command modules are imported only after that first look.
A bad command line or bad settings are then reported by the full parser, as for any command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from worker import __version__
from worker.cli.options import SERVE, add_serve_parsers, settings_of
from worker.runtime import drivers
from worker.settings import Settings

log = logging.getLogger("worker")

# One module per command (or per family of commands), in the order `--help` lists them; each
# has NAMES, add_parser(sub) and run(settings, args).
MODULES = ("serve", "ingest", "status", "results", "audit", "export", "backup", "restore",
           "retry", "notify", "doctor", "service")
# Commands whose files are the operator's (an export, a unit file), not the data folder's.
OWN_FILES = ("export", "service", "notify")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in SERVE:
        settings = _serve_settings(argv)
        if settings is not None:
            drivers.leave_out_unused(settings)
    try:
        code = dispatch(argv)  # only now: the command modules import peewee and Huey
        sys.stdout.flush()  # a closed pipe shows here, not at exit where it cannot be caught
    except BrokenPipeError:
        # `accu-ingest results | head`: the reader has all it wanted. End as a program killed
        # by SIGPIPE would (128 + 13), without a traceback, and with nothing left to flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


def commands() -> dict[str, ModuleType]:
    """Each command's module, by command name."""
    found: dict[str, ModuleType] = {}
    for name in MODULES:
        module = importlib.import_module(f"worker.cli.{name}")
        found.update(dict.fromkeys(module.NAMES, module))
    return found


def build_parser(modules: dict[str, ModuleType] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accu-ingest",
        description="Watch an inbox of HPLC/GC instrument exports and ingest every complete "
                    "file exactly once;\nrun the worker, ingest files now, and the operator's "
                    "tools.",
        epilog="examples:\n"
               "  accu-ingest run                 # watch inbox/, keep everything under data/\n"
               "  accu-ingest doctor              # what a start would find wrong, and the fix\n"
               "  accu-ingest status\n"
               "  accu-ingest export -o results.csv\n"
               "  accu-ingest COMMAND --help      # each command's options and examples",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"accu-ingest {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in dict.fromkeys((modules or commands()).values()):
        module.add_parser(sub)
    return parser


def dispatch(argv: Sequence[str]) -> int:
    from worker.cli import doctor
    from worker.consume.queue import QueueUnavailable
    from worker.record import db, keys
    from worker.runtime import logs
    from worker.settings import SettingsError

    modules = commands()
    args = build_parser(modules).parse_args(argv)
    logs.setup(args.verbose)
    try:
        settings = settings_of(args)
        doctor.before(settings, args.command)  # before anything starts: port, folders, database
        if args.command not in OWN_FILES:
            keys.restrict(settings.data_dir)
        if args.command in SERVE:
            logs.setup(args.verbose, settings, args.command)
        return int(modules[args.command].run(settings, args))
    except (SettingsError, doctor.Problem, db.DatabaseUnavailable, QueueUnavailable) as exc:
        print(f"accu-ingest: {exc}", file=sys.stderr)
        return 2


class _Unreadable(Exception):
    pass


class _QuietParser(argparse.ArgumentParser):
    """Raises where argparse would print and exit: the full parser reports a bad command line."""

    def error(self, message: str) -> NoReturn:
        raise _Unreadable(message)


def _serve_settings(argv: list[str]) -> Settings | None:
    """The settings of a ``run``, ``watch`` or ``consume`` command line; None when the command
    line or the settings are bad (the full parser reads them again and says what is wrong)."""
    parser = _QuietParser(prog="accu-ingest", add_help=False)
    add_serve_parsers(parser.add_subparsers(dest="command", required=True))
    try:
        return settings_of(parser.parse_args(argv))
    except Exception:  # _Unreadable, SettingsError, an unreadable config file: dispatch meets
        return None  # the same problem again and reports it as it always has
