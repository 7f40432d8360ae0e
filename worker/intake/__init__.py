"""From the inbox to the ledger: noticing files, waiting until each is complete, storing it."""
