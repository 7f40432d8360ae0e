"""Who did it: the operating-system user behind an operator's command or the service.

Audit events already name the host and process; an operator's action (retry, restore, a
configuration correction taking effect) also names the person, and a change of results the
reason they gave. ``getpass`` reads the login name from the environment first (``USERNAME`` on
Windows, ``LOGNAME``/``USER`` elsewhere), then the password database.
"""

from __future__ import annotations

import getpass
import os
import socket
from typing import Any


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return str(os.getuid()) if hasattr(os, "getuid") else "?"


def operator(reason: str | None) -> dict[str, Any]:
    """The ``by`` and ``reason`` fields of an operator's action."""
    fields: dict[str, Any] = {"by": f"operator {os_user()}@{socket.gethostname()}"}
    if reason is not None:
        fields["reason"] = reason
    return fields


def service() -> dict[str, Any]:
    """The ``by`` field of the service's own action (pruning, a configuration it applies)."""
    return {"by": f"service accu-ingest as {os_user()}@{socket.gethostname()}"}


def file_owner(path: str | os.PathLike[str]) -> str | None:
    """The owner of a file (who wrote the configuration), where the platform tells it."""
    try:
        import pwd
        return pwd.getpwuid(os.stat(path).st_uid).pw_name
    except (ImportError, KeyError, OSError):  # Windows has no pwd; an unnamed uid
        return None
