"""accu-ingest: turns instrument export files dropped in a folder into audited database rows."""

__version__ = "0.1.0"
