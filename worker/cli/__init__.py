"""The command line: one module per command; domain functions stay with their domain."""
