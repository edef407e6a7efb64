"""Rows read and written by statements written once per process, for the order path's hot
statements (the desk's records and the paper exchange's): there the ORM's building of a query
(filters, the compiler, Model.save, bulk_create) costs several times what running it does.

Values go through each field's own adaptation on the way in and its converters (the
backend's and the field's from_db_value) on the way out, as the ORM's do; the SQL is plain
enough for SQLite and PostgreSQL alike (`%s` parameters, RETURNING). Like bulk_create and
QuerySet.update, no model signals are sent. The default database only, as the ORM's default.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model


def quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def _db() -> BaseDatabaseWrapper:
    # Looked up once per statement: each `django.db.connection.x` is a look-up of its own.
    return connections[DEFAULT_DB_ALIAS]


class Shape:
    """The columns a read loads for one model (all its concrete fields, or some: the rest
    deferred), with what turns a row's values into a model instance."""

    def __init__(self, model: type[Model], names: tuple[str, ...] | None):
        concrete = model._meta.concrete_fields
        self.model = model
        self.fields = [f for f in concrete if names is None or f.name in names or f.primary_key]
        self.attnames = [f.attname for f in self.fields]
        self.width = len(self.fields)
        db = _db()
        self._converters = []  # (index, column, converters) of the fields that have any
        for index, field in enumerate(self.fields):
            column = field.get_col(model._meta.db_table)
            found = db.ops.get_db_converters(column) + column.get_db_converters(db)
            if found:
                self._converters.append((index, column, found))

    def columns(self, alias: str) -> str:
        """The select list's part for this shape, its table named `alias`."""
        return ", ".join(f"{alias}.{quoted(field.column)}" for field in self.fields)

    def load(self, row: Sequence, start: int = 0) -> Model | None:
        """The instance in row[start:start + width]; None when its primary key is NULL (an
        outer join that found nothing)."""
        values = list(row[start : start + self.width])
        if values[0] is None:
            return None
        db = _db()
        for index, column, converters in self._converters:
            value = values[index]
            for converter in converters:
                value = converter(value, column, db)
            values[index] = value
        return self.model.from_db(db.alias, self.attnames, values)


@functools.cache
def shape(model: type[Model], names: tuple[str, ...] | None = None) -> Shape:
    """The model's Shape: every concrete field, or `names` (and the primary key)."""
    assert model._meta.concrete_fields[0].primary_key  # load() reads the key first
    return Shape(model, names)


def fetch(sql: str, params: Sequence) -> list[tuple]:
    with _db().cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def instances(sql: str, params: Sequence, *models: type[Model]) -> list[tuple[Model | None, ...]]:
    """Run a SELECT of `shape(model).columns(…)` of each of `models` in turn: each row as one
    instance of each (None where a LEFT JOIN found no row). A row a join repeats (an account
    beside each of its positions) is one instance."""
    shapes = [shape(model) for model in models]
    seen: list[dict] = [{} for _ in models]
    result = []
    for row in fetch(sql, params):
        start, found = 0, []
        for each, loaded in zip(shapes, seen, strict=True):
            key = row[start]
            if key is None or key in loaded:
                found.append(loaded.get(key))
            else:
                found.append(loaded.setdefault(key, each.load(row, start)))
            start += each.width
        result.append(tuple(found))
    return result


def _parameter(field: Field, value, db: BaseDatabaseWrapper):
    """The value bound for a field, as the ORM binds it. None is NULL; aware datetimes and
    decimals go straight to the backend's adaptation, which get_db_prep_save reaches after
    type checks that cost twice as much."""
    if value is None:
        return None
    kind = field.get_internal_type()
    if kind == "DateTimeField":
        return db.ops.adapt_datetimefield_value(value)
    if kind == "DecimalField":
        return db.ops.adapt_decimalfield_value(value, field.max_digits, field.decimal_places)
    return field.get_db_prep_save(value, db)


@functools.cache
def _insert_statement(model: type[Model], count: int) -> tuple[str, list[Field], Field | None]:
    """INSERT of `count` rows of every concrete field but an auto primary key, which comes
    back (RETURNING); and the fields, in their placeholders' order."""
    auto = model._meta.auto_field
    fields = [field for field in model._meta.concrete_fields if field is not auto]
    row = f"({', '.join(['%s'] * len(fields))})"
    returning, _ = connection.ops.return_insert_columns([auto] if auto else [])
    sql = (
        f"INSERT INTO {quoted(model._meta.db_table)}"  # noqa: S608 (our identifiers)
        f" ({', '.join(quoted(field.column) for field in fields)})"
        f" VALUES {', '.join([row] * count)} {returning}"
    )
    return sql, fields, auto


def insert(new: Sequence[Model]) -> None:
    """Insert new instances of one model as save() would (defaults as the instances hold
    them, auto_now and auto_now_add set), in as few statements as the backend's parameter
    limit allows; an auto primary key is set from the row."""
    if not new:
        return
    db, model = _db(), type(new[0])
    # One row needs no batch-size question (the order path's inserts are one row each).
    size = 1 if len(new) == 1 else db.ops.bulk_batch_size(_insert_statement(model, 1)[1], new)
    for start in range(0, len(new), size):
        batch = new[start : start + size]
        sql, fields, auto = _insert_statement(model, len(batch))
        params = [
            _parameter(field, field.pre_save(instance, True), db)
            for instance in batch
            for field in fields
        ]
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            if auto is not None:
                for instance, (key,) in zip(batch, cursor.fetchall(), strict=True):
                    setattr(instance, auto.attname, key)
        for instance in batch:
            instance._state.adding = False
            instance._state.db = db.alias


@functools.cache
def _update_statement(
    model: type[Model], names: tuple[str, ...], where: tuple[str, ...]
) -> tuple[str, list[Field], list[Field]]:
    meta = model._meta
    written, matched = ([meta.get_field(name) for name in group] for group in (names, where))
    assignments = ", ".join(f"{quoted(field.column)} = %s" for field in written)
    conditions = " AND ".join(f"{quoted(field.column)} = %s" for field in matched)
    sql = f"UPDATE {quoted(meta.db_table)} SET {assignments} WHERE {conditions}"  # noqa: S608
    return sql, written, matched


def update(model: type[Model], values: dict, where: dict) -> int:
    """QuerySet(model).filter(**where).update(**values) for plain field names and
    equalities; returns how many rows it changed."""
    db = _db()
    sql, written, matched = _update_statement(model, tuple(values), tuple(where))
    # A written value is adapted as save adapts it, a matched one as the ORM's filters do.
    params = [_parameter(f, v, db) for f, v in zip(written, values.values(), strict=True)]
    params += [f.get_db_prep_value(v, db) for f, v in zip(matched, where.values(), strict=True)]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def save_columns(instance: Model, *names: str) -> None:
    """Write these fields of a stored instance to its row, as save(update_fields=…) would
    (an auto_now field named is set now); DatabaseError when the row is gone."""
    meta = instance._meta
    values = {name: meta.get_field(name).pre_save(instance, False) for name in names}
    if update(type(instance), values, {meta.pk.name: instance.pk}) != 1:
        raise DatabaseError("Save with update_fields did not affect any rows.")
