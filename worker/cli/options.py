"""The options every command shares, and ``run``/``watch``/``consume``'s own.

Light on purpose: the entry point reads a long-running command's settings with these before
peewee and Huey are imported (see main.py), and every command's parser uses the same ones.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from worker.settings import Settings, load

SERVE = ("run", "watch", "consume")
# Secrets (queue_secret, audit_key) are not options on purpose: see settings.SECRETS.
OPTIONS = ("inbox", "data_dir", "database_url", "queue_url", "host", "port",
           "workers", "consumer_processes", "node")

SETTINGS_NOTE = """
Settings come from defaults, then --config FILE (TOML), then ACCU_INGEST_* variables, then
these options. Secrets (queue_secret, audit_key) are read only from the file or the
environment, never from the command line. accu-ingest doctor checks them all."""


def command(sub: argparse._SubParsersAction, name: str, summary: str,  # type: ignore[type-arg]
            description: str, examples: str) -> argparse.ArgumentParser:
    """A subcommand with its one-line summary, a description and examples, as `git help` has."""
    return sub.add_parser(
        name, help=summary, description=description.strip(),
        epilog="examples:\n" + examples.strip("\n") + "\n" + SETTINGS_NOTE,
        formatter_class=argparse.RawDescriptionHelpFormatter)


def common(parser: argparse.ArgumentParser) -> None:
    """The settings options every command takes."""
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="TOML settings file (default: none, built-in defaults)")
    parser.add_argument("--inbox", type=Path, metavar="DIR",
                        help="folder the instrument exports into (default inbox/)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="database, queue, raw store and logs (default data/)")
    parser.add_argument("--database-url", metavar="URL",
                        help="sqlite:///… (default data/accu-ingest.db) or postgresql://…")
    parser.add_argument("--queue-url", metavar="URL",
                        help="sqlite:///… (default data/queue.db), redis://… or postgresql://…")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


SERVE_HELP = {
    "run": ("watch the inbox, consume and serve status (the lab PC)", """
Watch the inbox, store and register each complete file, parse it into results and serve
/livez, /readyz, /status and /metrics, until SIGINT or SIGTERM. Everything it needs is
checked before anything starts: the inbox must exist (or create_inbox = true), the data
folder must be writable and the status port free; otherwise it exits 2 naming the fix.""", """
  accu-ingest run                                  # inbox/ and data/ of this folder
  accu-ingest run --config /etc/accu-ingest.toml
  accu-ingest run --inbox /mnt/hplc/export --port 8010"""),
    "watch": ("watch the inbox and enqueue only (scale-out)", """
The instrument PC's half of a scaled-out installation: watch the inbox, register complete
files in the shared database and enqueue them; accu-ingest consume elsewhere parses them.""", """
  ACCU_INGEST_QUEUE_SECRET=… accu-ingest watch --config lab.toml --node hplc-3"""),
    "consume": ("consume the queue only (scale-out)", """
The processing half of a scaled-out installation: take files from the shared queue, parse
them and write results; no inbox.""", """
  ACCU_INGEST_QUEUE_SECRET=… accu-ingest consume --config lab.toml --workers 4"""),
}


def add_serve_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``run``, ``watch`` and ``consume``."""
    for name, (text, description, examples) in SERVE_HELP.items():
        p = command(sub, name, text, description, examples)
        common(p)
        p.add_argument("--host", metavar="ADDR",
                       help="status endpoint address (default 127.0.0.1)")
        p.add_argument("--port", type=int,
                       help="status endpoint port (default 8008; 0 = any free port)")
        if name != "watch":
            p.add_argument("--workers", type=int, metavar="N",
                           help="consumer threads per process (default 1)")
        if name == "run":
            p.add_argument("--consumer-processes", type=int, metavar="N",
                           help="consumer processes beside this one (default 2; 0 = consumer "
                                "threads in this process)")
        if name != "consume":
            p.add_argument("--node", metavar="NAME",
                           help="this watcher's name, the origin of its files "
                                "(default: the host name)")


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings a parsed command line asks for (options not given are left to the other
    layers)."""
    return load(args.config, **{k: getattr(args, k, None) for k in OPTIONS})
