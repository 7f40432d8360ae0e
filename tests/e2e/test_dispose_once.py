"""Disposal between processes: a finished file leaves the inbox once, whoever gets there first.

In ``run`` the consumer processes dispose of what they finished while the watcher's poll
disposes of whatever it finds final; they must never both move one file or both audit it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from worker.record import db, ledger
from worker.record.models import AuditEvent, SourceFile
from worker.settings import Settings

_DISPOSER = """
import sys, time
from pathlib import Path
from worker.record import db
from worker.consume import dispose
from worker.record.models import SourceFile
from worker.settings import Settings
settings = Settings(inbox=Path(sys.argv[1]), data_dir=Path(sys.argv[2]))
db.open_database(settings, migrate=False)
rows = list(SourceFile.select())
while time.time() < float(sys.argv[3]):  # both start together
    pass
print(len(dispose.dispose_rows(settings, rows)))
"""


def test_two_processes_disposing_the_same_rows_move_each_file_once(tmp_path: Path) -> None:
    settings = Settings(inbox=tmp_path / "inbox", data_dir=tmp_path / "data")
    database = db.open_database(settings)
    seen = []
    for i in range(300):
        source = settings.inbox / "run" / f"S{i}_Report.csv"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"file {i}\n")
        st = source.stat()
        seen.append(ledger.Seen(path=f"run/{source.name}", size=st.st_size,
                                mtime_ns=st.st_mtime_ns, sha256=f"{i:064x}", detected_at=0,
                                stable_at=0, origin=settings.node))
    ledger.register_many(seen, "test", 60)
    SourceFile.update(state="ingested").execute()
    database.close()

    start = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", _DISPOSER, str(settings.inbox),
                               str(settings.data_dir), str(start)], stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    done = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)

    db.open_database(settings, migrate=False)
    assert sum(done) == 300  # shared out between them, none done twice
    moved = [e.source_file_id for e in AuditEvent.select().where(AuditEvent.event == "moved")]
    assert sorted(moved) == sorted(r.id for r in SourceFile.select())
    assert not list(settings.inbox.rglob("*.csv"))
    assert len(list((settings.data_dir / "processed" / "run").iterdir())) == 300
