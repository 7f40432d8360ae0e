"""``accu-ingest notify test``: one message to every notification target, now, to see it arrive."""

from __future__ import annotations

import argparse
import sys

from worker.cli.options import command, common
from worker.deliver.messages import Message, Words
from worker.deliver.send import deliver
from worker.settings import Settings

NAMES = ("notify",)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = command(sub, "notify", "send a test notification to every target", """
test: send one message to each [[notify]] target of the settings (or only --target NAME)
and say which took it. Exit 0 when all did, 1 when one did not, 2 when none is configured.""",
                """
  accu-ingest notify test --config /etc/accu-ingest.toml
  accu-ingest notify test --config lab.toml --target lab-email""")
    common(p)
    p.add_argument("action", choices=["test"], help="test: send a test message")
    p.add_argument("--target", metavar="NAME", help="only the target with this name")


def run(settings: Settings, args: argparse.Namespace) -> int:
    targets = [t for t in settings.notify if args.target in (None, t.name, t.label)]
    if not targets:
        which = f"named {args.target!r} " if args.target else ""
        print(f"accu-ingest: no notification target {which}is configured: add a [[notify]] "
              "table with its url to the config file (see the README's Deliver section)",
              file=sys.stderr)
        return 2
    words = Words(settings)
    message = Message("test", f"accu-ingest on {words.node}: test notification",
                      "If you read this, this target receives accu-ingest's notifications.\n"
                      f"check the worker: {words.command('accu-ingest doctor')}")
    failed = 0
    for target in targets:
        try:
            ok = deliver(target, message)
            why = "the service did not take it (see the line above)"
        except Exception as exc:
            ok, why = False, f"{type(exc).__name__}: {exc}"
        print(f"{'ok    ' if ok else 'FAILED'} {target.label}" + ("" if ok else f": {why}"))
        failed += not ok
    return 1 if failed else 0
