"""Plain SQL for the engine's own rows, where the ORM's query compiler was
most of the cost (bench/README.md, "HTTP path"): a per-model INSERT sent with
``executemany``, plain UPDATEs of named fields, and SELECTs by a hand-written
WHERE. Values go through what the ORM would apply — ``get_db_prep_save``'s
adaptations on the way in, the fields' and the backend's converters on the
way out — so rows read and write exactly as through the ORM; only the
statement building is skipped. For ``workflows.services``, the one writer,
and the rows its receivers add in the same transaction (``tracker.latency``).
"""

from __future__ import annotations

import functools

from django.db import DatabaseError, connection
from django.utils import timezone


class PlainSelect:
    """Rows of one model by a hand-written WHERE, as the ORM would return
    them: the same columns (less ``exclude``, deferred as ``defer()`` does),
    each value through Django's own converters, instances from
    ``Model.from_db``; only the query compiler is skipped."""

    def __init__(self, model, exclude: tuple[str, ...] = ()):
        self.model = model
        self.fields = [f for f in model._meta.concrete_fields if f.name not in exclude]
        self._plans: dict[str, tuple[str, list]] = {}

    def q(self, column: str) -> str:
        return connection.ops.quote_name(column)

    def _plan(self) -> tuple[str, list]:
        key = connection.vendor
        plan = self._plans.get(key)
        if plan is None:
            table = self.q(self.model._meta.db_table)
            sql = f"SELECT {', '.join(f'{table}.{self.q(f.column)}' for f in self.fields)} FROM {table} WHERE "
            converters = []
            for f in self.fields:
                col = f.get_col(self.model._meta.db_table)
                found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
                converters.append((found, col))
            plan = self._plans[key] = (sql, converters)
        return plan

    def fetch(self, where: str, params: list, order: str = "") -> list:
        sql, converters = self._plan()
        with connection.cursor() as cursor:
            cursor.execute(sql + where + order, params)
            rows = cursor.fetchall()
        return [self._instance(row, converters) for row in rows]

    def fetch_with(self, other: PlainSelect, fk: str, where: str, params: list) -> list[tuple]:
        """(row, the ``other`` row its ``fk`` column points at, or None) in
        one SELECT with a LEFT JOIN, as ``select_related(fk)`` reads them."""
        sql, converters = self._plan()
        other_sql, other_converters = other._plan()
        mine, theirs = self.q(self.model._meta.db_table), other.q(other.model._meta.db_table)
        column = self.q(self.model._meta.get_field(fk).column)
        columns = other_sql[len("SELECT ") : other_sql.index(" FROM ")]
        joined = (
            sql.replace(" FROM ", f", {columns} FROM ", 1).removesuffix(" WHERE ")
            + f" LEFT JOIN {theirs} ON {mine}.{column} = {theirs}.{other.q(other.model._meta.pk.column)} WHERE "
        )
        with connection.cursor() as cursor:
            cursor.execute(joined + where, params)
            rows = cursor.fetchall()
        n = len(converters)
        return [
            (
                self._instance(row[:n], converters),
                other._instance(row[n:], other_converters) if row[n] is not None else None,
            )
            for row in rows
        ]

    def _instance(self, row, converters):
        values = []
        for value, (funcs, col) in zip(row, converters, strict=True):
            for func in funcs:
                value = func(value, col, connection)
            values.append(value)
        return self.model.from_db(connection.alias, [f.attname for f in self.fields], values)


def update_rows(model, rows: list, fields: list[str]) -> None:
    """Write ``fields`` of changed rows: one plain UPDATE, sent once per row
    with ``executemany``. ``bulk_update`` built a CASE WHEN per field and row
    (40% of an async completion's PUT); the ORM's UPDATE compiler per row was
    most of what remained (bench/README.md, "HTTP path")."""
    if len(rows) == 1:
        write_fields(model, rows[0], fields)
    elif rows:
        sql, columns = _update_plan(model, tuple(fields), connection.vendor)
        params = [[*(_adapted(row, columns)), row.pk] for row in rows]
        with connection.cursor() as cursor:
            cursor.executemany(sql, params)


@functools.lru_cache(maxsize=8)
def _insert_plan(model, vendor: str):
    """(INSERT statement, per column: attname and how its value is adapted)
    for ``_insert_rows``: what ``get_db_prep_save`` does for the field types
    these models use, decided once per model instead of per value."""
    qn = connection.ops.quote_name
    columns = []
    for f in model._meta.concrete_fields:
        if f.primary_key and f.get_internal_type() in ("AutoField", "BigAutoField"):
            continue  # the database numbers the row (the instance's pk stays None)
        auto = f.get_internal_type() == "DateTimeField" and (f.auto_now or f.auto_now_add)
        columns.append((f.attname, f.column, _adapter(f), auto))
    sql = (
        f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(c[1]) for c in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    return sql, columns


def _adapter(f):
    """How ``get_db_prep_save`` adapts a value of field ``f`` for the field
    types these models use (None: the driver takes it as it is)."""
    ops = connection.ops
    kind = f.get_internal_type()
    if kind == "JSONField":
        return functools.partial(_json_value, ops.adapt_json_value, f.encoder)
    if kind == "DateTimeField":
        return functools.partial(_time_value, ops.adapt_datetimefield_value)
    if kind in (
        "CharField",
        "TextField",
        "BooleanField",
        "PositiveIntegerField",
        "IntegerField",
        "FloatField",
        "BigAutoField",
        "ForeignKey",
    ):
        return None
    return functools.partial(lambda field, v: field.get_db_prep_save(v, connection), f)  # a type added later


@functools.lru_cache(maxsize=32)
def _update_plan(model, fields: tuple[str, ...], vendor: str):
    qn = connection.ops.quote_name
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    sql = (
        f"UPDATE {qn(meta.db_table)} SET {', '.join(f'{qn(f.column)} = %s' for f in columns)} "
        f"WHERE {qn(meta.pk.column)} = %s"
    )
    return sql, [(f.attname, _adapter(f)) for f in columns]


def write_fields(model, row, fields: list[str]) -> None:
    """``row.save(update_fields=fields)`` as one plain UPDATE (the ORM's
    compiler was most of an UPDATE's cost); ``updated_at`` is set by the
    caller. Raises as ``save`` does when the row is gone."""
    sql, columns = _update_plan(model, tuple(fields), connection.vendor)
    params = [*_adapted(row, columns), row.pk]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount == 0:
            raise DatabaseError(f"{model.__name__} {row.pk} is gone: its update affected no row")


def _adapted(row, columns) -> list:
    values = []
    for attname, adapt in columns:
        value = getattr(row, attname)
        values.append(value if adapt is None or value is None else adapt(value))
    return values


def _json_value(adapt, encoder, value):
    return None if value is None else adapt(value, encoder)


def _time_value(adapt, value):
    return None if value is None else adapt(value)


def insert_rows(model, rows: list) -> None:
    """``bulk_create(rows)`` for the engine's new task and action rows in one
    ``executemany``: the ORM's INSERT compiler (per value ``get_db_prep_save``)
    was a third of a seq50 POST (cProfile, bench/README.md "HTTP path"). As
    ``bulk_create``, auto_now fields get the time of the insert, and the rows
    are marked saved."""
    if not rows:
        return
    sql, columns = _insert_plan(model, connection.vendor)
    params = []
    for row in rows:
        stamp = None
        values = []
        for attname, _, adapt, auto in columns:
            if auto:
                stamp = stamp or timezone.now()
                setattr(row, attname, stamp)
            value = getattr(row, attname)
            values.append(value if adapt is None or value is None else adapt(value))
        params.append(values)
        row._state.adding = False
        row._state.db = connection.alias
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
