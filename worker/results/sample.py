"""A sample's own results (purity and any other kind of scope ``sample``), recomputed whenever a
file adds or supersedes injections of the sample.

Each sample-scope computation the registry names (``worker.results.kinds``) runs on the
sample's current peak tables (``worker.results.inputs``); ``worker.results.store`` keeps what
did not change and supersedes what did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from worker.chemistry import purity
from worker.record import sql
from worker.record.models import Sample
from worker.results import kinds, store
from worker.results.inputs import Tables, injection_label, labelled, peak_tables
from worker.settings import MethodSettings

CONTRADICTORY_SAMPLE = "contradictory_sample_metadata"
"""Flag on every result of a sample whose name other samples of the job print too, with other
metadata (kind, level, vial): the files contradict each other; their results stay apart."""

_NAMESAKES_SQL = (f"SELECT id FROM {sql.table(Sample)} WHERE job_id = ? AND sample_id = ? "
                  "AND analyte = ? AND id <> ? ORDER BY id")


def namesakes(sample: Sample) -> list[Sample]:
    """The job's other samples printed under the same name (and analyte), i.e. with other
    metadata: see ``worker.record.models.sample_identity``."""
    ids = [r[0] for r in sql.rows(_NAMESAKES_SQL, (sample.job_id, sample.sample_id,
                                                   sample.analyte, sample.id))]
    return list(Sample.select().where(Sample.id.in_(ids)).order_by(Sample.id)) if ids else []


def flag_namesakes(sample: Sample, wanted: Sequence[store.Wanted]) -> list[store.Wanted]:
    """``wanted`` with the contradiction flagged, and the other identities named, on each row."""
    others = [s.identity for s in namesakes(sample)]
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
