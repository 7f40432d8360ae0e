"""Starting a role: a status port taken between the pre-start check and the bind is still one
sentence naming the fix, and nothing has started by then."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from worker.record.models import database
from worker.runtime import roles
from worker.settings import Settings, SettingsError


def test_a_port_taken_after_the_check_stops_start_up_before_any_part_runs(
        tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(inbox=tmp_path / "inbox", data_dir=tmp_path / "data", port=port,
                            consumer_processes=0)
        before = {t.name for t in threading.enumerate()}
        with pytest.raises(SettingsError, match=rf"status port 127.0.0.1:{port} is not free .*"
                                                r"pass --port with a free port"):
            roles.start(settings, "run")
        started = {t.name for t in threading.enumerate()} - before
    database.close()
    assert not {"watcher-gate", "reconciler", "status"} & started
