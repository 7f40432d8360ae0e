"""JSON text from one encoder made once, for the encodings every file's write runs many times.

``json.JSONEncoder.encode`` builds a new C encoder on every call (and ``json.dumps`` given any
option a new JSONEncoder too); a write transaction encodes each result's inputs, each audit
event's details and body, and each digested row, a dozen or more texts per file, and that
set-up was a good part of each. The text is the same as ``JSONEncoder(**options).encode``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring, encode_basestring_ascii
from typing import Any


def encoder(*, sort_keys: bool = False, separators: tuple[str, str] = (", ", ": "),
            ensure_ascii: bool = True,
            default: Callable[[Any], Any] | None = None) -> Callable[[Any], str]:
    """``JSONEncoder(...).encode`` with these options, without its per-call set-up. No check
    for circular references: the values encoded are plain trees of dicts and lists."""
    plain = json.JSONEncoder(sort_keys=sort_keys, separators=separators,
                             ensure_ascii=ensure_ascii, default=default, check_circular=False)
    if c_make_encoder is None:  # an interpreter without the C accelerator
        return plain.encode
    item_separator, key_separator = separators
    made = c_make_encoder(None, plain.default,
                          encode_basestring_ascii if ensure_ascii else encode_basestring,
                          None, key_separator, item_separator, sort_keys, False, True)

    def encode(value: Any) -> str:
        if isinstance(value, str):  # as JSONEncoder.encode: the C encoder wants a container
            return plain.encode(value)
        return "".join(made(value, 0))

    return encode
