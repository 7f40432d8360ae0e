"""The running processes: run/watch/consume, consumer processes, HTTP, health, metrics."""
