"""Every result kind, declared once: what it is computed from, where its row hangs, its unit,
the words of a yes/no outcome, and how ``results`` orders and shows it.

Why one registry: the kinds used to be listed in each module that stored, superseded, ordered
or worded them, and a kind missing from one tuple left its old rows current. Now the store
supersedes by scope (every kind of that scope, from here), the view orders by position here,
and storing an undeclared kind is refused.

A kind computed from a sample's own injections (scope ``sample``) names its computation here
(``compute``): adding one such as tailing or resolution is its chemistry module and one entry
below. Kinds that need the job's calibration curve (scope ``job``) are computed by
``worker.results.job``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from worker.chemistry import purity
from worker.chemistry.steps import Computation

Scope = Literal["sample", "job"]
Row = Literal["injection", "sample", "job"]
# A sample-scope computation: the sample's labelled injections (purity signal's peaks, natural
# order), its sample id and analyte → its Computations (injection rows carry
# ``inputs["injection"]``, the label).
SampleComputation = Callable[[Sequence[purity.Injection], str, str | None],
                             Iterable[Computation]]

# The unit is the method's concentration unit (or the mass unit, or area per it).
BY_METHOD = "by method"


@dataclass(frozen=True)
class Kind:
    """One result kind. Its position in ``KINDS`` is its place in ``results`` output."""

    name: str
    scope: Scope  # what a recompute reads: the sample's own injections, or its job's curve
    row: Row  # one row per injection, per sample, or per job (sample null)
    unit: str | None  # None: no unit (r², yes/no outcomes)
    outcomes: tuple[str, str] | None = None  # a yes/no outcome stored as these words in ``text``
    digits: int = 4  # decimals in the text view
    detail: Callable[[dict[str, Any]], str] | None = None  # the number behind an outcome
    compute: SampleComputation | None = None  # scope ``sample`` only


def _purity(injections: Sequence[purity.Injection], sample: str,
            analyte: str | None) -> list[Computation]:
    found = purity.sample_purity(injections, sample=sample, analyte=analyte)
    return [*found.injections, found.purity, found.rsd]


def _identity_detail(inputs: dict[str, Any]) -> str:
    if inputs.get("delta_min") is None:
        return ""
    return f"ΔRT {inputs['delta_min']:+.3f} min vs {inputs['reference_rt']:.3f}"


def _acceptance_detail(inputs: dict[str, Any]) -> str:
    if inputs.get("purity") is None:
        return ""
    return f"{inputs['purity']:.2f} % vs ≥ {inputs['minimum_pct']:g} %"


CALIBRATION_SLOPE = Kind("calibration_slope", "job", "job", BY_METHOD)
CALIBRATION_INTERCEPT = Kind("calibration_intercept", "job", "job", "area")
CALIBRATION_R2 = Kind("calibration_r2", "job", "job", None, digits=5)
PURITY_INJECTION = Kind("purity_injection", "sample", "injection", "%", compute=_purity)
PURITY = Kind("purity", "sample", "sample", "%", compute=_purity)
PURITY_RSD = Kind("purity_rsd", "sample", "sample", "%", compute=_purity)
ACCEPTANCE = Kind("acceptance", "job", "sample", None, outcomes=("pass", "fail"),
                  detail=_acceptance_detail)
IDENTITY = Kind("identity", "job", "sample", None, outcomes=("conforms", "does not conform"),
                detail=_identity_detail)
CONCENTRATION = Kind("concentration", "job", "sample", BY_METHOD)
AMOUNT = Kind("amount", "job", "sample", BY_METHOD)

# The job's own rows (its curve) first, then within a sample: purity, acceptance, identity,
# quantity.
KINDS: tuple[Kind, ...] = (
    CALIBRATION_SLOPE, CALIBRATION_INTERCEPT, CALIBRATION_R2,
    PURITY_INJECTION, PURITY, PURITY_RSD,
    ACCEPTANCE, IDENTITY, CONCENTRATION, AMOUNT,
)


def get(name: str) -> Kind | None:
    return select().get(name)


# select's answers for the registry they were made from: every result written asks, and each
# was a dict built anew. Keyed by the registry tuple itself, so one extended (a plugin, a
# test) is answered from its own entries.
_selected: dict[tuple[Scope | None, bool | None], tuple[tuple[Kind, ...], Mapping[str, Kind]]] = {}


def select(scope: Scope | None = None, *, job_row: bool | None = None) -> Mapping[str, Kind]:
    """The kinds of a scope by name, in registry order; ``job_row`` True: only the job's own
    rows, False: only rows of a sample or its injections. Read-only: the answer is shared."""
    made = _selected.get((scope, job_row))
    if made is None or made[0] is not KINDS:
        made = _selected[(scope, job_row)] = (KINDS, MappingProxyType(
            {k.name: k for k in KINDS if (scope is None or k.scope == scope)
             and (job_row is None or (k.row == "job") == job_row)}))
    return made[1]


def names(scope: Scope | None = None, *, job_row: bool | None = None) -> tuple[str, ...]:
    return tuple(select(scope, job_row=job_row))


def rank(name: str) -> int:
    """Display position; an undeclared kind (an old row) goes last."""
    return next((i for i, k in enumerate(KINDS) if k.name == name), len(KINDS))


def sample_computations() -> list[SampleComputation]:
    """Each sample-scope computation once (purity makes three kinds), in registry order."""
    found: list[SampleComputation] = []
    for k in KINDS:
        if k.scope == "sample" and k.compute is not None and k.compute not in found:
            found.append(k.compute)
    return found
