"""Fault injection: the real worker, killed and restarted while files arrive, then counted."""
