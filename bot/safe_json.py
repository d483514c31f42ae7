"""JSON parsing that a hostile peer cannot crash the process with.

`json.loads` recurses in C once per nesting level, guarded only by the interpreter's recursion
limit. eth-account imports py_ecc, which raises that limit to 100000 for the whole process, so
a body of ~100k nested brackets (200 KB) overflows the C stack: a segmentation fault, not an
exception. Every body from outside (venue answers in the bot, requests in the simulator) goes
through `loads`, which refuses nesting deeper than `MAX_DEPTH` with a ValueError (what the
callers already handle as "not JSON") before the C parser sees it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

__all__ = ["MAX_DEPTH", "loads", "nesting_depth"]

MAX_DEPTH = 256
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


def nesting_depth(data: bytes) -> int:
    """The deepest bracket nesting of a JSON text, string contents not counted."""
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return data.count(b"[") + data.count(b"{")  # an upper bound, and small: good enough
    stripped = _STRING.sub(b"", data)
    if not stripped:
        return 0
    steps = _OPEN[np.frombuffer(stripped, dtype=np.uint8)].astype(np.int64)
    return int(np.cumsum(steps).max(initial=0))


def loads(data: str | bytes | bytearray, **kwargs: Any) -> Any:
    """`json.loads`, refusing nesting deeper than MAX_DEPTH with a ValueError."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    depth = nesting_depth(raw)
    if depth > MAX_DEPTH:
        raise ValueError(f"JSON nested {depth} levels deep (at most {MAX_DEPTH} accepted)")
    return json.loads(data, **kwargs)
