"""What is recorded: the ledger of files, the audit trail, the tables and migrations."""
