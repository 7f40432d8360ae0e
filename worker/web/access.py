"""Who may read: anyone on this machine when the port listens on loopback; elsewhere only a
client presenting ``web_token`` (as a Bearer token, or as the password of HTTP basic, which a
browser asks for). File names, sample names and results are the lab's data: a port open to the
network without a token would hand them to anyone who can reach it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import socket

from worker.settings import Settings, SettingsError

OPEN_PATHS = ("/livez", "/readyz")  # probes learn nothing from these but up or not


def is_loopback(host: str) -> bool:
    """Every address ``host`` resolves to is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    try:
        return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback
                                   for i in infos)
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Refuse to start on a non-loopback address without a token (exit 2, one sentence)."""
    if settings.web_token is None and not is_loopback(settings.host):
        raise SettingsError(
            f"the status port would listen on {settings.host}, beyond this machine, without an "
            "access token: set web_token (16 characters or more) in the config file or "
            "ACCU_INGEST_WEB_TOKEN, or keep host = \"127.0.0.1\"")


def allowed(settings: Settings, path: str, authorization: str | None) -> bool:
    """May this request be answered? Always on loopback without a token."""
    token = settings.web_token
    if token is None or path in OPEN_PATHS:
        return True
    if not authorization:
        return False
    want = token.get_secret_value().encode("utf-8")
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return hmac.compare_digest(value.strip().encode("utf-8"), want)
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        _, _, password = decoded.partition(b":")
        return hmac.compare_digest(password, want)
    return False
