"""The lab's read-only view: server-rendered pages at ``/`` and a JSON API under ``/api/`` on the
status port, and the data behind ``accu-ingest show`` and ``jobs``.

Views only read (DESIGN.md invariant 10): nothing here writes to the database or the raw store.
``queries`` reads plain dicts (shared by pages, API and command line), ``chart`` turns traces
into SVG geometry, ``app`` routes a request to a template or to JSON, ``access`` guards a
non-loopback bind.
"""
