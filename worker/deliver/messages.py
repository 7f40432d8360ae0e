"""The words of each notification: what happened, to which file, and the command that acts on it.

A message names the exact command an operator runs next (``accu-ingest retry 17 --config …``),
with the same --config (or --data-dir) the worker was started with, so it can be pasted as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from worker.settings import Settings

SHOWN_FILES = 10  # rejections listed by name in one message; the rest are counted

# A problem's headline and the command that looks into it, by event name.
PROBLEMS: dict[str, tuple[str, str]] = {
    "backlog": ("files are waiting too long", "accu-ingest status"),
    "canary": ("the canary file did not come through", "accu-ingest doctor"),
    "inbox": ("the inbox is missing or a file in it cannot be read", "accu-ingest doctor"),
    "consumers": ("a consumer process keeps restarting", "accu-ingest doctor"),
    "disk": ("disk space is low", "accu-ingest doctor"),
    "audit": ("the audit trail does not verify", "accu-ingest audit verify"),
}

REASON = ' --reason "…"'  # retry says why (it can change results): the operator fills it in


@dataclass
class Message:
    event: str  # a NotifyEvent: which targets want it
    title: str
    body: str
    resolved: bool = False


@dataclass
class Rejection:
    id: int
    path: str
    reason: str
    line: int | None = None


@dataclass
class Words:
    """Messages for one installation: its node name and how its commands are spelled."""

    settings: Settings
    node: str = field(init=False)

    def __post_init__(self) -> None:
        self.node = self.settings.node

    def command(self, text: str) -> str:
        """``text`` with the options that point it at this installation."""
        s = self.settings
        if s.config_file is not None:
            return f"{text} --config {s.config_file}"
        if s.data_dir != Path("data"):
            return f"{text} --data-dir {s.data_dir}"
        return text

    def rejected(self, files: list[Rejection]) -> Message:
        n = len(files)
        title = (f"accu-ingest on {self.node}: {n} file{'s' if n > 1 else ''} rejected")
        lines = []
        for f in files[:SHOWN_FILES]:
            where = f" (line {f.line})" if f.line is not None else ""
            retry = self.command(f"accu-ingest retry {f.id}") + REASON
            lines += [f"{f.path}: {f.reason}{where}", f"  after fixing the cause: {retry}"]
        if n > SHOWN_FILES:
            lines.append(f"… and {n - SHOWN_FILES} more; see them with "
                         f"{self.command('accu-ingest status')}")
        if n > 1:
            lines.append(f"all rejected files again: "
                         f"{self.command('accu-ingest retry --all-rejected')}{REASON}")
        lines.append("each file is in data/quarantine/ with a .reason.txt beside it")
        return Message("rejected", title, "\n".join(lines))

    def problem(self, event: str, detail: str) -> Message:
        headline, command = PROBLEMS[event]
        return Message(event, f"accu-ingest on {self.node}: PROBLEM {event}: {headline}",
                       f"{detail}\nlook: {self.command(command)}")

    def resolved(self, event: str, was: str, minutes: float) -> Message:
        headline, _ = PROBLEMS[event]
        return Message(event, f"accu-ingest on {self.node}: resolved {event}",
                       f"resolved after {minutes:.1f} min: {headline}\nwas: {was}",
                       resolved=True)

    def job_finished(self, job: str, samples: int, files: int, path: Path) -> Message:
        return Message("job_finished", f"accu-ingest on {self.node}: job {job} finished",
                       f"{samples} sample(s) from {files} file(s); report {path}\n"
                       f"results: {self.command('accu-ingest results')}\n"
                       f"for the LIMS: {self.command('accu-ingest export --format lims-csv')}")


def digest(messages: list[Message]) -> Message:
    """Several messages waiting for one target, as one: a burst is one e-mail, not many."""
    if len(messages) == 1:
        return messages[0]
    title = f"accu-ingest: {len(messages)} notifications"
    body = "\n\n".join(f"{m.title}\n{m.body}" for m in messages)
    return Message(messages[0].event, title, body, resolved=all(m.resolved for m in messages))
