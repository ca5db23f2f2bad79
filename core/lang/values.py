"""What may be stored: JSON values, within a depth and a size.

Every value that ends up in a JSON column comes through ``to_json`` first
(expression results, action results, API input), so a value PostgreSQL or
SQLite would refuse (NaN, a NUL character, a lone surrogate, a set, a date)
is refused here with its path, instead of failing the transaction later.
"""

from __future__ import annotations

import math
import re
from typing import Any

# PostgreSQL refuses NUL in text and jsonb, and a lone surrogate can not be
# encoded as UTF-8 by any database driver.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# json.dumps and str() refuse ints with more than 4300 digits (sys.int_info).
_MAX_INT_BITS = 13_000


class NotJson(ValueError):
    """``value`` can not be stored: ``path`` (``input.items[3]``) and ``reason``."""

    def __init__(self, path: str, reason: str):
        if len(path) > 120:  # a path 100 levels deep says no more than its start
            path = path[:100] + "…"
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


class TooLarge(NotJson):
    def __init__(self, what: str, limit: int):
        self.limit = limit
        super().__init__(what, f"larger than the size limit of {limit // 1024} KB (execution_field_size_limit_kb)")


def to_json(value: Any, *, max_depth: int = 100, max_bytes: int | None = None, root: str = "the value") -> Any:
    """``value`` as plain JSON: tuples, sets and other iterables of dict views
    become lists, str subclasses become str. Raises NotJson for anything else
    JSON has no type for, nesting deeper than ``max_depth``, or (TooLarge) an
    approximate JSON size over ``max_bytes``. Messages start with the path
    from ``root`` (``input.items[3]: ...``)."""
    left = [max_bytes or 0]  # bytes still allowed; unused (spend returns at once) without a limit

    def spend(n: int, path: str) -> None:
        if max_bytes is None:
            return
        left[0] -= n
        if left[0] < 0:
            raise TooLarge(root, max_bytes)

    def walk(v: Any, path: str, depth: int) -> Any:
        if depth > max_depth:
            raise NotJson(path, f"nested deeper than {max_depth} levels")
        if v is None or v is True or v is False:
            spend(4, path)
            return v
        if isinstance(v, str):
            if _UNSTORABLE.search(v):
                raise NotJson(path, "contains a NUL character or a lone surrogate, which can not be stored")
            spend(len(v) + 2, path)
            return str(v)
        if isinstance(v, int):
            if v.bit_length() > _MAX_INT_BITS:
                raise NotJson(path, "integer with more than 4000 digits")
            spend(v.bit_length() // 3 + 1, path)
            return int(v)
        if isinstance(v, float):
            if not math.isfinite(v):
                raise NotJson(path, f"{v} is not a JSON number")
            spend(24, path)
            return v
        if isinstance(v, dict):
            out = {}
            for k, item in v.items():
                if not isinstance(k, str):
                    raise NotJson(path, f"key {k!r} is not a string")
                kpath = f"{path}.{k}"
                if _UNSTORABLE.search(k):
                    raise NotJson(path, "a key contains a NUL character or a lone surrogate")
                spend(len(k) + 4, kpath)
                out[str(k)] = walk(item, kpath, depth + 1)
            return out
        if isinstance(v, (list, tuple, set, frozenset, type({}.keys()), type({}.values()), type({}.items()))):
            spend(2, path)
            return [walk(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(v)]
        raise NotJson(path, f"a {type(v).__name__} is not a JSON value")

    return walk(value, root, 0)


def check_size(value: Any, max_bytes: int | None, what: str) -> None:
    """Raise TooLarge when ``value`` (already JSON) is over ``max_bytes``."""
    if max_bytes is not None:
        to_json(value, max_depth=500, max_bytes=max_bytes, root=what)
