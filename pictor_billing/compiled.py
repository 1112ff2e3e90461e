"""SQL the ORM builds once per shape of a query, run again with each request's values.

A few pages build the same queries over and over: the finance invoice search (only the values typed
into its filters change, never the SQL around them) and the Licenses tab (only the account and the
page). Building and compiling them through the ORM took more Python (0.8-0.9 ms a search, 0.45 ms a
tab) than the database took to answer them. Here a query is built and compiled once per shape, from
sample values, and each of its parameters is traced back to the value it came from; a later request
with the same shape puts its own values in those places.

Tracing relies on nothing the ORM promises: the shape is built twice, from two sets of samples, and
the template is kept only if it reproduces the second compilation exactly (SQL and parameters). A
shape that does not is compiled by the ORM on every request, as before; the tests of each page check
that every shape it makes is kept and equals the ORM's SQL.

`prepared_cursor` goes one step further for a query every page runs whose planning costs the database
more than running it (the Billing header's): the server plans it once per connection.
"""

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.db import connections

# A page's start in a template's SQL: the ORM writes slices as literals, so the sample start is written
# into the SQL and each request's (an int the search computed) replaces it.
OFFSET_SAMPLE = 987650


@dataclass(frozen=True)
class Template:
    """A compiled query and, per parameter, where its value comes from."""

    sql: str
    slots: tuple  # per parameter: ("const", the value, None) or (kind, a values key, an index in it or None)

    @classmethod
    def constant(cls, sql: str, params) -> "Template":
        """One query's SQL and parameters as they are (what a shape without a template runs)."""
        return cls(sql, tuple(("const", param, None) for param in params))

    def params(self, values: Mapping, alias: str = "default") -> list:
        """The parameters for these values, as the ORM would have passed them."""
        prep = connections[alias].ops.prep_for_like_query
        params = []
        for kind, name, index in self.slots:
            if kind == "const":
                params.append(name)
                continue
            value = values[name] if index is None else values[name][index]
            params.append(value if kind == "value" else value.isoformat() if kind == "iso"
                          else f"%{prep(value)}%" if kind == "contains" else f"{prep(value)}%")
        return params

    def sql_at(self, start: int) -> str:
        """The SQL with the page starting at `start` (the template was compiled at OFFSET_SAMPLE)."""
        return self.sql.replace(f"OFFSET {OFFSET_SAMPLE}", f"OFFSET {int(start)}")


def _forms(samples: Mapping) -> dict:
    """Every parameter a sample value can become -> its slot: (kind, name, index)."""
    forms = {}
    for name, sample in samples.items():
        for index, value in (enumerate(sample) if isinstance(sample, list | tuple) else [(None, sample)]):
            forms[_key(value)] = ("value", name, index)
            if isinstance(value, datetime.date):
                forms[_key(value.isoformat())] = ("iso", name, index)  # SQLite's adapted date
            if isinstance(value, str):
                forms[_key(f"%{value}%")] = ("contains", name, index)
                forms[_key(f"{value}%")] = ("prefix", name, index)
    return forms


def _key(value) -> tuple:
    """A dict key that tells the types apart (the sample -1001 must not be taken for a Decimal -1001)."""
    return type(value).__name__, value


def compile_template(build: Callable[[Mapping], object], first: Mapping, second: Mapping) -> Template | None:
    """The template of the query `build(values)` returns (a QuerySet), traced from two sample sets of the
    same shape whose values all differ from each other and from any constant of the query; None if the
    second does not come out of the first's template exactly."""
    sql, params = build(first).query.sql_with_params()
    forms = _forms(first)
    slots = tuple(forms.get(_key(param), ("const", param, None)) for param in params)
    if sql.count(f"OFFSET {OFFSET_SAMPLE}") > 1:
        return None
    template = Template(sql, slots)
    again_sql, again_params = build(second).query.sql_with_params()
    if again_sql != sql or [_key(p) for p in template.params(second)] != [_key(p) for p in again_params]:
        return None
    return template


def template_sql(template: Template | None, build: Callable[[Mapping], object], values: Mapping,
                 start: int = 0) -> tuple[str, list]:
    """The SQL and parameters of `build(values)` (a page's starting at `start`): from its template, or,
    for a shape without one (None), compiled by the ORM as it stands."""
    if template is None:
        template = Template.constant(*build(values).query.sql_with_params())
    return template.sql_at(start), template.params(values)


def prepared_cursor(connection):
    """A cursor whose statements the database plans once per connection where the backend offers it
    (PostgreSQL: pictor_billing.postgresql), else an ordinary cursor (SQLite caches its own statements)."""
    make = getattr(connection, "prepared_cursor", None)
    return make() if make is not None else connection.cursor()
