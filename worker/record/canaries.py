"""Telling the canary's rows from real ones (runtime/canary.py drops the canary files).

Its files live in a reserved folder at the top of the inbox, and its Job is keyed by that folder;
counts, results and exports leave them out with these conditions, and report the canary apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from peewee import Expression, fn

from worker.record.models import INGESTED, Job, SourceFile

CANARY_DIR = "_accu_canary"
CANARY_PREFIX = CANARY_DIR + "/"


def not_canary_file() -> Expression:
    """SQL condition: a ledger row that is not a canary (its folder is at the inbox top)."""
    return fn.SUBSTR(SourceFile.path, 1, len(CANARY_PREFIX)) != CANARY_PREFIX


def not_canary_job() -> Expression:
    """SQL condition: a Job that is not the canary's (its key ends with the reserved folder)."""
    return ~Job.key.endswith(":" + CANARY_DIR)


def is_canary_file() -> Expression:
    return fn.SUBSTR(SourceFile.path, 1, len(CANARY_PREFIX)) == CANARY_PREFIX


def last_success() -> datetime | None:
    """When a canary was last ingested, from the ledger, so it survives restarts."""
    value = (SourceFile.select(fn.MAX(SourceFile.finished_at))
             .where(is_canary_file(), SourceFile.state == INGESTED).scalar())
    return to_datetime(value)


def to_datetime(value: Any) -> datetime | None:
    """A naive-UTC datetime from what the database returns (SQLite gives text)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
