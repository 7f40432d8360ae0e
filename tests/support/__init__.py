"""What the tests share, imported as ``from support.x import …``.

pytest puts tests/ on sys.path (tests/conftest.py, rootdir-relative); the benchmark and the fault
harness, run as ``python -m tests.bench`` / ``python -m tests.faults.harness``, put it there in
their package ``__init__``. Either way these modules load once, under the one name ``support``.
"""
