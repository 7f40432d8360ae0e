"""Logging set-up: readable lines on a terminal, JSON lines in rotated files under a service.

``log_format = auto`` picks JSON when stdout is not a terminal or when systemd started us
(``INVOCATION_ID`` is set): then every record also goes, one JSON object a line, to
``data/logs/accu-ingest-<role>.jsonl`` (rotated at 10 MiB, 10 kept), while stderr keeps the
readable lines for the journal or the Windows service wrapper's log. One file per role, so a
``watch`` and a ``consume`` on the same data folder never rotate each other's file.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from worker.record import jsontext, who
from worker.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 10
# How long an info or debug line may wait in the service's log file buffer (``BatchedFile``).
FLUSH_SECONDS = 0.2


# Built once: json.dumps builds an encoder on every call given any option, and a busy worker
# writes a line for every file.
_ENCODER = jsontext.encoder(ensure_ascii=False, default=str)
# A text file writes each "\n" as the platform's line end: the bytes a line takes on disk.
_NEWLINE_EXTRA = len(os.linesep) - 1
# What every LogRecord has; anything else was passed with ``extra=`` and becomes a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: UTC time, level, logger, message, process, thread, error,
    and the fields passed with ``extra=`` (a file's id, path, SHA-256, format, job, duration),
    so a log search can select on them rather than parse the message."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
            "thread": record.threadName,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _ENCODER(entry)


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``, with the local time of each second formatted once, not per record."""

    _second: int | None = None
    _text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._text = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return self.default_msec_format % (self._text, record.msecs)


def wants_json(log_format: str) -> bool:
    if log_format != "auto":
        return log_format == "json"
    return bool(os.environ.get("INVOCATION_ID")) or not sys.stdout.isatty()


class QuietRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """The JSON log file, which says once on stderr when it cannot be written (a full data
    disk) instead of printing a traceback for every line, and once when it can again."""

    failing = False
    _failed_now = False

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        """Once the file has reached ``maxBytes`` (it may pass it by one line): the standard
        check formats every record a second time and looks up the file twice to ask whether
        this one would pass it."""
        if self.maxBytes <= 0:
            return False
        if self.stream is None:  # delayed until the first record
            self.stream = self._open()
        self.stream.seek(0, 2)  # other processes' lines (an operator's command) count too
        # Never a device or pipe (bpo-45401): only a regular file is renamed away.
        return self.stream.tell() >= self.maxBytes and os.path.isfile(self.baseFilename)

    def emit(self, record: logging.LogRecord) -> None:
        self._failed_now = False
        super().emit(record)  # calls handleError on failure
        if self.failing and not self._failed_now:
            self.failing = False
            sys.stderr.write(f"accu-ingest: writing the log file {self.baseFilename} again\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):  # the last flush fails the same way on a full disk
            super().close()

    def handleError(self, record: logging.LogRecord | None) -> None:
        self._failed_now = True
        if not self.failing:
            self.failing = True
            sys.stderr.write(f"accu-ingest: cannot write the log file {self.baseFilename}: "
                             f"{sys.exc_info()[1]}; logging to stderr only until it can\n")


class BatchedFile(QuietRotatingFileHandler):
    """The service's JSON log file, written a batch of lines at a time.

    A busy worker writes a line for every file, and a write and a look at the file's size for
    each line cost more than making it. Here a warning or an error is written to the file at
    once, with the lines before it; other lines within ``FLUSH_SECONDS``, by a thread that
    wakes only when one is waiting; and every line when the handler is closed (on exit:
    ``logging.shutdown``). The size to rotate at is counted from the lines written, and read
    from the file again at each flush, which also counts any other process's lines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._size = 0
        self._waiting = False  # lines written to the stream, not yet flushed
        self._closed = False
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        if self.maxBytes <= 0:
            return False
        self._opened()
        # Never a device or pipe (bpo-45401): only a regular file is renamed away.
        return self._size >= self.maxBytes and os.path.isfile(self.baseFilename)

    def emit(self, record: logging.LogRecord) -> None:
        """``RotatingFileHandler.emit`` without a flush for each line below a warning."""
        try:
            if self.shouldRollover(record):
                self.doRollover()
            stream = self._opened()
            line = self.format(record) + self.terminator
            stream.write(line)
            self._size += (len(line) if line.isascii()
                           else len(line.encode(self.encoding or "utf-8", "replace")))
            self._size += _NEWLINE_EXTRA
            if record.levelno >= logging.WARNING or self._closed:  # closed: no flusher
                self._flush_now()
            elif not self._waiting:
                self._waiting = True
                self._wake_flusher()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.acquire()
        try:
            self._closed = True
            self._waiting = False
        finally:
            self.release()
        self._wake.set()
        super().close()  # flushes what is left

    def _opened(self) -> Any:
        """The stream, opened when delayed (the first line, or the first after a rotation),
        with the size the file has then."""
        if self.stream is None:
            self.stream = self._open()
            self._size = self.stream.seek(0, os.SEEK_END)
        return self.stream

    def _flush_now(self) -> None:
        """Flush, and take the file's size as it is now (another process's lines included).
        Only a flush says the file can be written again: a line can always enter the buffer."""
        self._waiting = False
        if self.stream is not None:
            self.stream.flush()
            self._size = self.stream.seek(0, os.SEEK_END)
        if self.failing:
            self.failing = False
            sys.stderr.write(f"accu-ingest: writing the log file {self.baseFilename} again\n")

    def _wake_flusher(self) -> None:
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._flushing, name="log flusher",
                                             daemon=True)
            self._flusher.start()
        self._wake.set()

    def _flushing(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            time.sleep(FLUSH_SECONDS)  # lines written meanwhile go with this flush
            self.acquire()
            try:
                if self._closed:
                    return
                if self._waiting:
                    try:
                        self._flush_now()
                    except Exception:
                        self.handleError(None)
            finally:
                self.release()


def setup(verbose: bool = False, settings: Settings | None = None,
          role: str | None = None) -> logging.Handler | None:
    """Configure the root logger; with settings and a role, add the JSON file when wanted.

    Returns the file handler, if one was added.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # Neither format names the caller's file, line or function, and finding them walks the
    # stack for every record (the logging HOWTO's "Optimization").
    logging._srcfile = None
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(TextFormatter(TEXT_FORMAT))
    root.addHandler(console)
    if not verbose:
        logging.getLogger("huey").setLevel(logging.WARNING)
    if settings is None or role is None or not wants_json(settings.log_format):
        return None
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    file = BatchedFile(
        settings.logs_dir / f"accu-ingest-{role}.jsonl", maxBytes=MAX_BYTES,
        backupCount=BACKUPS, encoding="utf-8", delay=True)
    file.setFormatter(JsonFormatter())
    root.addHandler(file)
    return file


def action(settings: Settings, name: str, message: str, **fields: Any) -> None:
    """Record an operator's action (retry, backup, export) as one JSON line in
    ``data/logs/accu-ingest-operator.jsonl``, beside the service's own logs, whoever ran it and
    wherever: the command prints its own readable result, so nothing goes to the terminal."""
    logger = logging.getLogger("accu_ingest.operator")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    path = settings.logs_dir / "accu-ingest-operator.jsonl"
    if not any(getattr(h, "baseFilename", None) == str(path) for h in logger.handlers):
        for old in list(logger.handlers):
            logger.removeHandler(old)
            old.close()
        try:
            settings.logs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            sys.stderr.write(f"accu-ingest: cannot record this action in {path}: {exc}\n")
            return
        handler = QuietRotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS,
                                           encoding="utf-8", delay=True)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.info(message, extra={"action": name, "user": who.os_user(), **fields})

