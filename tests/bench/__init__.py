"""The benchmark of issue 6: the real worker on embedded defaults, figures beside their targets.

Run it from the repository root with ``python -m tests.bench`` (``--help`` for the options). It is
not part of the default pytest run: only ``test_smoke.py`` is collected, at a toy size.
"""
