"""A sample's own results (purity and any other kind of scope ``sample``), recomputed whenever a
file adds or supersedes injections of the sample.

Each sample-scope computation the registry names (``worker.results.kinds``) runs on the
sample's current peak tables (``worker.results.inputs``); ``worker.results.store`` keeps what
did not change and supersedes what did.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence

from worker.chemistry import purity
from worker.record import sql
from worker.record.models import Sample
from worker.results import kinds, store
from worker.results.inputs import Tables, injection_label, labelled, peak_tables
from worker.settings import MethodSettings

CONTRADICTORY_SAMPLE = "contradictory_sample_metadata"
"""Flag on every result of a sample whose name other samples of the job print too, with other
metadata (kind, level, vial): the files contradict each other; their results stay apart."""

_NAMESAKES_SQL = (f"SELECT identity FROM {sql.table(Sample)} WHERE job_id = ? AND sample_id = ? "
                  "AND analyte = ? AND id <> ? ORDER BY id")
_NAMES_SQL = (f"SELECT id, sample_id, analyte, identity FROM {sql.table(Sample)} "
              "WHERE job_id = ? AND sample_id IN ({}) ORDER BY id")
_read = threading.local()


def namesakes(sample: Sample) -> list[str]:
    """The identities of the job's other samples printed under the same name (and analyte),
    i.e. with other metadata (see ``worker.record.models.sample_identity``), in their order."""
    known: dict[tuple[int, str, str], list[tuple[int, str]]] | None = getattr(_read, "known",
                                                                              None)
    found = None if known is None else known.get((sample.job_id, sample.sample_id,
                                                  sample.analyte))
    if found is None:
        return [r[0] for r in sql.rows(_NAMESAKES_SQL, (sample.job_id, sample.sample_id,
                                                        sample.analyte, sample.id))]
    return [identity for id_, identity in found if id_ != sample.id]


@contextlib.contextmanager
def namesakes_read_once(samples: Iterable[Sample]) -> Iterator[None]:
    """Inside, the ``namesakes`` of these samples come from one query per job made on the way
    in, not one per call: a chunk's recompute asks for each sample's twice (its own results,
    its job's), each a round trip to a database server. No sample may be added inside."""
    _read.known, _read.names = {}, set()
    try:
        namesakes_preload(samples)
        yield
    finally:
        _read.known = _read.names = None


def namesakes_preload(samples: Iterable[Sample]) -> None:
    """Inside ``namesakes_read_once``, read the namesakes of these samples too, those not read
    yet in one query per job: a changed curve reaches every sample of its job."""
    known: dict[tuple[int, str, str], list[tuple[int, str]]] | None = getattr(_read, "known",
                                                                              None)
    if known is None:
        return
    read: set[tuple[int, str]] = _read.names
    names: dict[int, set[str]] = {}
    for s in samples:
        if (s.job_id, s.sample_id) not in read:
            names.setdefault(s.job_id, set()).add(s.sample_id)
    for job_id, wanted in names.items():
        ordered = sorted(wanted)
        read.update((job_id, name) for name in ordered)
        for chunk in sql.chunks(ordered):
            for id_, sample_id, analyte, identity in sql.rows(
                    _NAMES_SQL.format(sql.marks(len(chunk))), (job_id, *chunk)):
                known.setdefault((job_id, sample_id, analyte), []).append((id_, identity))


def flag_namesakes(sample: Sample, wanted: Sequence[store.Wanted]) -> list[store.Wanted]:
    """``wanted`` with the contradiction flagged, and the other identities named, on each row."""
    others = namesakes(sample)
    if not others:
        return list(wanted)
    return [(injection, comp.model_copy(update={
                "flags": [*comp.flags, CONTRADICTORY_SAMPLE],
                "inputs": {**comp.inputs, "sample_identity": sample.identity,
                           "same_name_as": others}}))
            for injection, comp in wanted]


def sample_purity(sample: Sample, tables: Tables) -> purity.SamplePurity | None:
    """Purity of ``sample`` from its peak tables (see ``peak_tables``); None without any."""
    if not tables:
        return None
    return purity.sample_purity(labelled(tables), sample=sample.sample_id,
                                analyte=sample.analyte or None)


def recompute_sample(sample: Sample, methods: Mapping[str, MethodSettings] | None = None,
                     cache: dict[int, Tables] | None = None) -> None:
    """Compute the sample-scope kinds for ``sample`` from its current injections."""
    tables = peak_tables(sample, methods, cache)
    wanted: list[store.Wanted] = []
    if tables:
        injections = labelled(tables)
        by_label = {injection_label(inj): inj for inj, _ in tables}
        declared = kinds.select("sample")
        for compute in kinds.sample_computations():
            for comp in compute(injections, sample.sample_id, sample.analyte or None):
                kind = declared.get(comp.kind)  # undeclared: refused by the store
                per_injection = kind is not None and kind.row == "injection"
                wanted.append((by_label[comp.inputs["injection"]] if per_injection else None,
                               comp))
    store.replace(sample.job_id, sample, flag_namesakes(sample, wanted), "sample")
