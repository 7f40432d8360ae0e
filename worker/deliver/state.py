"""The notifier's and the job reports' memory between passes and restarts: one JSON file.

Kept beside the reports (``data/reports/state.json``) rather than in the database, because views
only read the database. Losing it costs a few repeated or skipped messages, never a file.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class State:
    """A dict saved atomically after each change; every access under one lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.data: dict[str, Any] = {}
        try:
            self.data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:  # a torn or foreign file: start afresh, say so
            log.warning("notifier state %s unreadable (%s); starting afresh", path, exc)

    @property
    def fresh(self) -> bool:
        return not self.data

    def get(self, key: str, default: Any = None) -> Any:
        """A copy: changing it changes nothing until it is ``set``."""
        with self.lock:
            return json.loads(json.dumps(self.data[key])) if key in self.data else default

    def set(self, key: str, value: Any) -> None:
        self.update({key: value})

    def update(self, values: dict[str, Any]) -> None:
        """Set these keys; the file is written only when one of them changed (the loop sets
        its cursors every pass)."""
        with self.lock:
            if all(k in self.data and self.data[k] == v for k, v in values.items()):
                return
            self.data.update(json.loads(json.dumps(values)))  # a copy, as the file holds it
            self.save()

    def count(self, name: str, label: str, n: int = 1) -> None:
        """A counter for /metrics: name → label → value, kept across restarts."""
        with self.lock:
            counts = self.data.setdefault("counts", {}).setdefault(name, {})
            counts[label] = counts.get(label, 0) + n
            self.save()

    def counts(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return json.loads(json.dumps(self.data.get("counts", {})))

    def save(self) -> None:
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
