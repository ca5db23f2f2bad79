"""Mistral's list parameters: ``marker``, ``limit``, ``sort_keys``,
``sort_dirs``, ``fields`` and field filters with optional operators
(``state=in:RUNNING,PAUSED``, ``created_at=gte:2026-11-01``).

Pagination is keyset pagination: the marker is the id of the last row of the
previous page, and the next page holds the rows after it in the sort order,
so pages stay stable while new rows arrive.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.db.models import Q, QuerySet

from workflows.errors import InvalidInput, NotFound

_OPS = {
    "eq": "exact",
    "neq": None,
    "in": "in",
    "nin": None,
    "gt": "gt",
    "gte": "gte",
    "lt": "lt",
    "lte": "lte",
    "has": "contains",
}
_CONTROL = {"marker", "limit", "sort_keys", "sort_dirs", "fields", "scope", "namespace", "all_projects", "nulls"}


def _filter(qs: QuerySet, field: str, raw: str) -> QuerySet:
    op, sep, value = raw.partition(":")
    if not sep or op not in _OPS:
        op, value = "eq", raw
    if value in ("null", "None") and op in ("eq", "neq"):
        q = Q(**{f"{field}__isnull": True})
        return qs.filter(q) if op == "eq" else qs.exclude(q)
    if op in ("in", "nin"):
        q = Q(**{f"{field}__in": [v for v in value.split(",") if v]})
        return qs.filter(q) if op == "in" else qs.exclude(q)
    if op == "neq":
        return qs.exclude(**{field: value})
    return qs.filter(**{f"{field}__{_OPS[op]}": value})


def paginate(request, qs: QuerySet, *, key: str, render, filters: set[str], sortable: set[str],
             default_sort: str = "created_at") -> dict:
    params = request.query_params
    for name, value in params.items():
        if name in _CONTROL:
            continue
        if name not in filters:
            raise InvalidInput(f"Unknown filter '{name}' for {key}; known: {', '.join(sorted(filters))}")
        qs = _filter(qs, name, value)

    keys = [k for k in (params.get("sort_keys") or default_sort).split(",") if k]
    dirs = [d for d in (params.get("sort_dirs") or "").split(",") if d]
    for k in keys:
        if k not in sortable:
            raise InvalidInput(f"Can not sort {key} by '{k}'; sortable: {', '.join(sorted(sortable))}")
    if any(d not in ("asc", "desc") for d in dirs):
        raise InvalidInput("sort_dirs takes 'asc' or 'desc'")
    dirs += [dirs[-1] if dirs else "asc"] * (len(keys) - len(dirs))
    if "id" not in keys:
        keys.append("id")
        dirs.append(dirs[0] if dirs else "asc")
    qs = qs.order_by(*[("-" if d == "desc" else "") + k for k, d in zip(keys, dirs)])

    marker = params.get("marker")
    if marker:
        row = qs.model.objects.filter(id=marker).values(*keys).first()
        if row is None:
            raise NotFound(qs.model.__name__, marker, key="marker")
        after = Q()
        for i, (k, d) in enumerate(zip(keys, dirs)):
            step = Q(**{f"{k}__{'lt' if d == 'desc' else 'gt'}": row[k]})
            for prev in keys[:i]:
                step &= Q(**{prev: row[prev]})
            after |= step
        qs = qs.filter(after)

    limit = params.get("limit")
    if limit:
        try:
            limit = int(limit)
        except ValueError:
            raise InvalidInput(f"limit must be a positive integer, got {limit!r}") from None
        if limit <= 0:
            raise InvalidInput("limit must be a positive integer")
        rows = list(qs[:limit])
    else:
        rows = list(qs)

    items = [render(r) for r in rows]
    fields = [f for f in (params.get("fields") or "").split(",") if f]
    if fields:
        keep = set(fields) | {"id"}
        items = [{k: v for k, v in item.items() if k in keep} for item in items]
    body = {key: items}
    if limit and len(rows) == limit:
        nxt = {k: v for k, v in params.items() if k != "marker"}
        nxt["marker"] = rows[-1].id
        body["next"] = request.build_absolute_uri(request.path) + "?" + urlencode(nxt)
    return body
