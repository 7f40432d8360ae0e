"""Configuration corrections (level corrections, exclusions) recorded when they take effect.

They live in the settings file, where they change results without a command anyone ran: the
first process to start with corrections different from the last recorded ones records a
``corrections`` event with them, the reason the file gives for each, who runs the service,
and the configuration file with its owner and modification time (who wrote it, as far as the
operating system tells). ``calibration_choices`` events then point back to this reason.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import UTC, datetime
from typing import Any

from worker.record import audit, sql, who
from worker.record.models import AuditEvent, database
from worker.settings import Settings

EVENT = "corrections"
_LAST_SQL = (f"SELECT details FROM {sql.table(AuditEvent)} WHERE event = ? "
             "ORDER BY seq DESC LIMIT 1")


def current(settings: Settings) -> dict[str, Any]:
    """The corrections in force, by method name (JSON-shaped, as the trail keeps them)."""
    return {name: {"level_corrections": {f"{k:g}": v for k, v in sorted(m.level_corrections
                                                                         .items())},
                   "exclude_levels": sorted(m.exclude_levels), "reason": m.reason}
            for name, m in sorted(settings.methods.items())
            if m.level_corrections or m.exclude_levels}


def record(settings: Settings) -> bool:
    """Record the corrections in force when they differ from the last recorded; True if so."""
    now = current(settings)
    with database.atomic():
        audit.lock_chain()
        found = sql.rows(_LAST_SQL, (EVENT,))
        before = json.loads(found[0][0]).get("methods", {}) if found else {}
        if now == before:
            return False
        config = settings.config_file
        source: dict[str, Any] = {}
        if config is not None:
            path = os.fspath(config)
            source = {"config": os.path.abspath(path), "config_owner": who.file_owner(path)}
            with contextlib.suppress(OSError):
                source["config_modified"] = datetime.fromtimestamp(
                    os.stat(path).st_mtime, UTC).isoformat(timespec="seconds")
        audit.record(EVENT, None, None, methods=now, previous=before, **source,
                     **who.service())
    return True
