"""The times register_many writes into a file's detected and stable events."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from worker.record import ledger


def test_event_times_are_spelled_as_datetime_spells_them() -> None:
    rnd = random.Random(23)
    stamps = [0.0, 1.5, 1765000000.0, 1765000000.9999996, 1765000000.0000005,
              1765000000.0000015, 1765000000.0000025, 1765000001.4999995, 946684799.9999999]
    stamps += [rnd.uniform(0, 4e9) for _ in range(5000)]
    stamps += [rnd.randrange(0, 4 * 10**15) / 1e6 + rnd.choice((0, 5e-7)) for _ in range(5000)]
    for ts in stamps:
        assert ledger._iso(ts) == datetime.fromtimestamp(ts, UTC).isoformat(
            timespec="microseconds"), ts
