"""Single rows read and written by statements written once per process, for the order path's
hot statements: there the ORM's building of a query (filters, the compiler) costs several times
what running it does. Values go through each field's own adaptation on the way in and its
converters (the backend's and the field's from_db_value) on the way out, as the ORM's do; the
SQL is plain enough for SQLite and PostgreSQL alike (`%s` parameters, RETURNING). Like
bulk_create and QuerySet.update, no model signals are sent.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from django.db import connection
from django.db.models import Model


def quoted(name: str) -> str:
    return connection.ops.quote_name(name)


class Shape:
    """The columns a read loads for one model (all its concrete fields, or some: the rest
    deferred), with what turns a row's values into a model instance."""

    def __init__(self, model: type[Model], names: tuple[str, ...] | None):
        concrete = model._meta.concrete_fields
        self.model = model
        self.fields = [f for f in concrete if names is None or f.name in names or f.primary_key]
        self.attnames = [f.attname for f in self.fields]
        self.width = len(self.fields)
        self._converters = [
            [
                (converter, column)
                for converter in (
                    *connection.ops.get_db_converters(column),
                    *column.get_db_converters(connection),
                )
            ]
            for column in (field.get_col(model._meta.db_table) for field in self.fields)
        ]

    def columns(self, alias: str) -> str:
        """The select list's part for this shape, its table named `alias`."""
        return ", ".join(f"{alias}.{quoted(field.column)}" for field in self.fields)

    def load(self, row: Sequence, start: int = 0) -> Model | None:
        """The instance in row[start:start + width]; None when its primary key is NULL (an
        outer join that found nothing)."""
        values = list(row[start : start + self.width])
        if values[0] is None:
            return None
        for index, converters in enumerate(self._converters):
            for converter, column in converters:
                values[index] = converter(values[index], column, connection)
        return self.model.from_db(connection.alias, self.attnames, values)


@functools.cache
def shape(model: type[Model], names: tuple[str, ...] | None = None) -> Shape:
    """The model's Shape: every concrete field, or `names` (and the primary key)."""
    assert model._meta.concrete_fields[0].primary_key  # load() reads the key first
    return Shape(model, names)


def fetch(sql: str, params: Sequence) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@functools.cache
def _insert_statement(model: type[Model]) -> tuple[list, str]:
    meta = model._meta
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    columns = ", ".join(quoted(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    return fields, (
        f"INSERT INTO {quoted(meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608
        f" RETURNING {quoted(meta.pk.column)}"
    )


def insert(instance: Model) -> None:
    """Save a new instance (its primary key unset) as one INSERT of every field, as
    instance.save() would: defaults as the instance holds them, auto_now and auto_now_add
    set, the new primary key set on it."""
    fields, sql = _insert_statement(type(instance))
    params = [
        field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields
    ]
    ((instance.pk,),) = fetch(sql, params)
    instance._state.adding = False
    instance._state.db = connection.alias


@functools.cache
def _update_statement(
    model: type[Model], names: tuple[str, ...], where: tuple[str, ...]
) -> tuple[list, str]:
    meta = model._meta
    written, matched = ([meta.get_field(name) for name in group] for group in (names, where))
    assignments = ", ".join(f"{quoted(field.column)} = %s" for field in written)
    conditions = " AND ".join(f"{quoted(field.column)} = %s" for field in matched)
    sql = f"UPDATE {quoted(meta.db_table)} SET {assignments} WHERE {conditions}"  # noqa: S608
    # A lookup's value is adapted as the ORM's filters adapt it, a written one as save does.
    adapters = [field.get_db_prep_save for field in written]
    adapters += [field.get_db_prep_value for field in matched]
    return adapters, sql


def update(model: type[Model], values: dict, where: dict) -> int:
    """QuerySet(model).filter(**where).update(**values) for plain field names and
    equalities; returns how many rows it changed."""
    adapters, sql = _update_statement(model, tuple(values), tuple(where))
    given = (*values.values(), *where.values())
    params = [adapt(value, connection) for adapt, value in zip(adapters, given, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
