"""Mistral's list parameters: ``marker``, ``limit``, ``sort_keys``,
``sort_dirs``, ``fields`` and field filters with optional operators
(``state=in:RUNNING,PAUSED``, ``created_at=gte:2026-11-01``).

Pagination is keyset pagination: the marker is the id of the last row of the
previous page, and the next page holds the rows after it in the sort order,
so pages stay stable while new rows arrive.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import BooleanField, F, Q, QuerySet

from workflows import conf
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
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _field(model, path: str):
    """The model field at ``path`` (``a__b`` follows relations), or None."""
    try:
        *hops, last = path.split("__")
        for hop in hops:
            model = model._meta.get_field(hop).related_model
        return model._meta.get_field(last)
    except (FieldDoesNotExist, AttributeError):
        return None


def _value(field, raw: str):
    if isinstance(field, BooleanField) and raw.lower() in _BOOLS:
        return _BOOLS[raw.lower()]
    return raw


def _filter(qs: QuerySet, field: str, raw: str) -> QuerySet:
    op, sep, value = raw.partition(":")
    if not sep or op not in _OPS:
        op, value = "eq", raw
    if value in ("null", "None") and op in ("eq", "neq"):
        q = Q(**{f"{field}__isnull": True})
        return qs.filter(q) if op == "eq" else qs.exclude(q)
    mf = _field(qs.model, field)
    if op in ("in", "nin"):
        q = Q(**{f"{field}__in": [_value(mf, v) for v in value.split(",") if v]})
        return qs.filter(q) if op == "in" else qs.exclude(q)
    if op == "neq":
        return qs.exclude(**{field: _value(mf, value)})
    return qs.filter(**{f"{field}__{_OPS[op]}": _value(mf, value)})


def _order(model, key: str, desc: bool):
    """NULLs come first going up and last going down, on every database."""
    mf = _field(model, key)
    if mf is not None and mf.null:
        return F(key).desc(nulls_last=True) if desc else F(key).asc(nulls_first=True)
    return f"-{key}" if desc else key


def _after(key: str, desc: bool, value) -> tuple[Q, Q]:
    """(rows strictly after ``value`` in this key's order, rows equal to it),
    consistent with ``_order``."""
    if value is None:
        equal = Q(**{f"{key}__isnull": True})
        after = Q(pk__in=[]) if desc else Q(**{f"{key}__isnull": False})
        return after, equal
    after = Q(**{f"{key}__{'lt' if desc else 'gt'}": value})
    if desc:
        after |= Q(**{f"{key}__isnull": True})
    return after, Q(**{key: value})


def in_namespace(request, qs: QuerySet) -> QuerySet:
    """Mistral's ``namespace`` filter of definition lists: the rows of that
    namespace when it is given ('' is the default one), every namespace when not."""
    namespace = request.query_params.get("namespace")
    return qs if namespace is None else qs.filter(namespace=namespace)


def paginate(
    request,
    qs: QuerySet,
    *,
    key: str,
    render,
    filters,
    sortable: set[str],
    default_sort: str = "created_at",
    tiebreak: tuple[str, ...] = (),
) -> dict:
    """``filters``: the filter names, or a mapping of name -> ORM lookup path
    for names that live on a related row. ``tiebreak``: keys added (in the
    first key's direction) before ``id`` to order rows that tie."""
    params = request.query_params
    lookups = filters if isinstance(filters, dict) else {f: f for f in filters}
    for name, value in params.items():
        if name in _CONTROL:
            continue
        if name not in lookups:
            raise InvalidInput(f"Unknown filter '{name}' for {key}; known: {', '.join(sorted(lookups))}")
        try:
            qs = _filter(qs, lookups[name], value)
        except (ValidationError, ValueError, TypeError) as exc:
            detail = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            raise InvalidInput(f"Bad value for filter '{name}': {value!r} ({detail})") from None

    keys = [k for k in (params.get("sort_keys") or default_sort).split(",") if k]
    dirs = [d for d in (params.get("sort_dirs") or "").split(",") if d]
    for k in keys:
        if k not in sortable:
            raise InvalidInput(f"Can not sort {key} by '{k}'; sortable: {', '.join(sorted(sortable))}")
    if any(d not in ("asc", "desc") for d in dirs):
        raise InvalidInput("sort_dirs takes 'asc' or 'desc'")
    dirs += [dirs[-1] if dirs else "asc"] * (len(keys) - len(dirs))
    dirs = dirs[: len(keys)]
    for extra in (*tiebreak, "id"):
        if extra not in keys:
            keys.append(extra)
            dirs.append(dirs[0] if dirs else "asc")
    qs = qs.order_by(*[_order(qs.model, k, d == "desc") for k, d in zip(keys, dirs, strict=True)])

    marker = params.get("marker")
    if marker:
        row = qs.model.objects.filter(id=marker).values(*keys).first()
        if row is None:
            raise NotFound(qs.model.__name__, marker, key="marker")
        after = Q(pk__in=[])
        equal_so_far = Q()
        for k, d in zip(keys, dirs, strict=True):
            step_after, step_equal = _after(k, d == "desc", row[k])
            after |= equal_so_far & step_after
            equal_so_far &= step_equal
        qs = qs.filter(after)

    limit = _limit(params.get("limit"))
    rows = list(qs[:limit])

    items = [render(r) for r in rows]
    fields = [f for f in (params.get("fields") or "").split(",") if f]
    if fields:
        keep = set(fields) | {"id"}
        items = [{k: v for k, v in item.items() if k in keep} for item in items]
    body = {key: items}
    if len(rows) == limit:
        nxt = {k: v for k, v in params.items() if k != "marker"}
        nxt["marker"] = rows[-1].id
        body["next"] = request.build_absolute_uri(request.path) + "?" + urlencode(nxt)
    return body


def _limit(raw: str | None) -> int:
    """Every list is bounded: API_LIST_DEFAULT_LIMIT rows without ``limit``,
    at most API_LIST_MAX_LIMIT with it (the ``next`` link pages on)."""
    most = conf.api("API_LIST_MAX_LIMIT")
    if not raw:
        return min(conf.api("API_LIST_DEFAULT_LIMIT"), most)
    if len(raw) > 12 or not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= most:
        raise InvalidInput(f"limit must be an integer from 1 to {most}, got {raw[:40]!r}")
    return int(raw)
