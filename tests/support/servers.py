"""The shared PostgreSQL and Redis servers: whether they answer, and a private database and queue
name per test, so parallel tests and runs never see each other's rows or tasks."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

from support.corpus import IN_CI

PG_SERVER = os.environ.get("ACCU_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
REDIS_SERVER = os.environ.get("ACCU_TEST_REDIS", "redis://127.0.0.1:6379/0")


def unreachable() -> str | None:
    """Why the PostgreSQL and Redis servers cannot be used here, or None when both answer."""
    import psycopg
    import redis
    try:
        psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3).close()
    except Exception as exc:
        return f"PostgreSQL at {PG_SERVER} does not answer: {exc}"
    try:
        redis.Redis.from_url(REDIS_SERVER, socket_connect_timeout=3).ping()
    except Exception as exc:
        return f"Redis at {REDIS_SERVER} does not answer: {exc}"
    return None


def require_servers() -> None:
    """Skip the test with the reason when the servers do not answer; under CI, fail it."""
    reason = unreachable()
    if reason:
        if IN_CI:
            pytest.fail(f"CI needs the PostgreSQL and Redis servers: {reason}")
        pytest.skip(reason)


@contextlib.contextmanager
def fresh_postgres(prefix: str = "accu_test") -> Iterator[str]:
    """A new, empty database for one run (dropped after); yields its URL."""
    import psycopg
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_queue_name(prefix: str = "accutest") -> Iterator[str]:
    """A queue name of its own (Huey keys ``huey.*.<name>`` in Redis); its keys go after."""
    import redis
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        client = redis.Redis.from_url(REDIS_SERVER)
        keys = list(client.scan_iter(match=f"huey.*{name}*"))
        if keys:
            client.delete(*keys)
