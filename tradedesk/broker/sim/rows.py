"""Prebuilt SQL for the rows every order reads and writes (account, positions, orders, trade
updates).

On this path building a statement (a SELECT's compiler, Model.save, bulk_create) costs
several times running it, so these are built once per model and column set and run through
Django's cursor. Values pass through the fields' own conversions both ways (get_db_prep_save
to write; the backend's and the field's converters to read), so the rows written are the
ORM's and the instances read are too, on SQLite and PostgreSQL. The connection is looked up
once per statement (each `django.db.connection.x` is a lookup).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model


def quoted(name: str) -> str:
    return connection.ops.quote_name(name)


@functools.cache
def columns(model: type[Model], alias: str) -> str:
    """The model's columns, qualified by `alias`, in the order `fetch` reads them."""
    return ", ".join(f"{alias}.{quoted(field.column)}" for field in model._meta.concrete_fields)


@functools.cache
def _reader(model: type[Model]):
    """The model's attribute names, where its primary key is among them, and each column's
    converters (the ones a queryset of the model would apply)."""
    fields = model._meta.concrete_fields
    converters = []
    for index, field in enumerate(fields):
        column = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((index, column, found))
    return [field.attname for field in fields], fields.index(model._meta.pk), converters


def fetch(sql: str, params: Sequence, *models: type[Model]) -> list[tuple[Model | None, ...]]:
    """Run a SELECT of `columns(model, …)` of each of `models` in turn: each row as one
    instance of each (None where a LEFT JOIN found no row: its primary key is NULL). A row
    a join repeats (the account beside each of its positions) is one instance."""
    db = connections[DEFAULT_DB_ALIAS]
    readers = [(model, *_reader(model), {}) for model in models]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    result = []
    for row in found:
        start, instances = 0, []
        for model, attnames, pk_index, converters, seen in readers:
            end = start + len(attnames)
            key = row[start + pk_index]
            if key is None or key in seen:
                instances.append(seen.get(key))
            else:
                values = list(row[start:end])
                for index, column, convert in converters:
                    value = values[index]
                    for converter in convert:
                        value = converter(value, column, db)
                    values[index] = value
                instances.append(seen.setdefault(key, model.from_db(db.alias, attnames, values)))
            start = end
        result.append(tuple(instances))
    return result


def _parameter(field: Field, value, db: BaseDatabaseWrapper):
    """The value bound for a field, as the ORM binds it. None is NULL for every field of the
    exchange's models; its datetimes (aware) and decimals go straight to the backend's
    adaptation, which their fields' get_db_prep_save reaches after type checks that cost
    twice as much."""
    if value is None:
        return None
    kind = field.get_internal_type()
    if kind == "DateTimeField":
        return db.ops.adapt_datetimefield_value(value)
    if kind == "DecimalField":
        return db.ops.adapt_decimalfield_value(value, field.max_digits, field.decimal_places)
    return field.get_db_prep_save(value, db)


@functools.cache
def _fields(model: type[Model]) -> list[Field]:
    """What an INSERT of the model writes: every concrete field but an auto primary key."""
    return [field for field in model._meta.concrete_fields if field is not model._meta.auto_field]


@functools.cache
def _insert_statement(model: type[Model], count: int):
    """INSERT of `count` rows, the auto primary key (if any) coming back (RETURNING); and the
    fields, in their placeholders' order."""
    auto, fields = model._meta.auto_field, _fields(model)
    row = f"({', '.join(['%s'] * len(fields))})"
    returning, _ = connection.ops.return_insert_columns([auto] if auto else [])
    sql = (
        f"INSERT INTO {quoted(model._meta.db_table)}"  # noqa: S608 (our identifiers)
        f" ({', '.join(quoted(field.column) for field in fields)})"
        f" VALUES {', '.join([row] * count)} {returning}"
    )
    return sql, fields, auto


def insert(instances: Sequence[Model]) -> None:
    """Insert new instances of one model, as bulk_create would (one statement per batch the
    backend allows); an auto primary key is set from the row."""
    if not instances:
        return
    db, model = connections[DEFAULT_DB_ALIAS], type(instances[0])
    # One row (most inserts here) fits any backend's statement.
    size = 1 if len(instances) == 1 else db.ops.bulk_batch_size(_fields(model), instances)
    for start in range(0, len(instances), size):
        batch = instances[start : start + size]
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
def _update_statement(model: type[Model], names: tuple[str, ...]):
    meta = model._meta
    fields = [meta.get_field(name) for name in names]
    assignments = ", ".join(f"{quoted(field.column)} = %s" for field in fields)
    sql = (
        f"UPDATE {quoted(meta.db_table)} SET {assignments}"  # noqa: S608 (our identifiers)
        f" WHERE {quoted(meta.pk.column)} = %s"
    )
    return sql, fields, meta.pk


def update(instance: Model, *names: str) -> None:
    """Write these fields of a stored instance to its row, as save(update_fields=…) would."""
    db = connections[DEFAULT_DB_ALIAS]
    sql, fields, pk = _update_statement(type(instance), names)
    params = [_parameter(field, field.pre_save(instance, False), db) for field in fields]
    params.append(pk.get_db_prep_value(instance.pk, db))
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != 1:
            raise DatabaseError("Save with update_fields did not affect any rows.")
