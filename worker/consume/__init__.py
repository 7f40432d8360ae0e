"""From a ledger row to database rows: the queue, the ingest task, where the source goes."""
