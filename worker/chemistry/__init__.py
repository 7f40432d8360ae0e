"""Pure chemistry computations (no database, no I/O) that the ingest pipeline calls.

Every computation returns a ``Computation`` (value, unit, inputs, step-by-step trace, flags,
calc version) so each Result row can show its full working. Modules:

- ``purity``: main peak per injection, mean purity and RSD per sample and analyte;
- ``calibration``: least-squares line of main-peak area against level, with corrections and
  exclusions from configuration;
- ``identity``: sample RT against the reference RT within a tolerance;
- ``quantity``: concentration (× dilution) and amount from the curve;
- ``acceptance``: purity against the analyte's criterion;
- ``naturalsort``: ``Inj_2`` before ``Inj_10``.
"""

from worker.chemistry.acceptance import purity_acceptance
from worker.chemistry.calibration import (
    CalibrationCurve,
    CalibrationPoint,
    LinearFit,
    Standard,
    fit_calibration,
    linear_fit,
)
from worker.chemistry.identity import identity
from worker.chemistry.naturalsort import natural_key, natural_sorted
from worker.chemistry.purity import (
    Injection,
    MainPeak,
    PeakInput,
    SamplePurity,
    injection_purity,
    sample_purity,
    select_main_peak,
)
from worker.chemistry.quantity import Quantity, quantity
from worker.chemistry.steps import ChemistryError, Computation, Step

__all__ = [
    "CalibrationCurve",
    "CalibrationPoint",
    "ChemistryError",
    "Computation",
    "Injection",
    "LinearFit",
    "MainPeak",
    "PeakInput",
    "Quantity",
    "SamplePurity",
    "Standard",
    "Step",
    "fit_calibration",
    "identity",
    "injection_purity",
    "linear_fit",
    "natural_key",
    "natural_sorted",
    "purity_acceptance",
    "quantity",
    "sample_purity",
    "select_main_peak",
]
