"""Computed results: per sample and per job, kept current, and read back for people and systems."""
