"""The hot queries, built by peewee once per database and then run as kept SQL text.

Building a SELECT with peewee costs 0.3-0.7 ms (its SQL is generated anew each time),
more than SQLite takes to answer it. A `Prepared` query is written as ordinary peewee
code, turned into SQL the first time it runs on a database, and from then on only gets
new parameter values; rows come back as model instances, through the fields' own
conversions, as from the query itself.
"""
from weakref import WeakKeyDictionary

from .base import db

# Stand-ins for the arguments while the SQL is built: numbers no caller passes.
MARKER_BASE = 7_340_000_000_000_000


class Prepared:
    """`build(*arguments)` -> a peewee SELECT of `model` whose parameters are the arguments."""

    def __init__(self, model, build):
        self.model = model
        self.build = build
        self.arity = build.__code__.co_argcount
        self.compiled = WeakKeyDictionary()  # database -> (sql, argument index of each param)

    def compile(self):
        markers = [MARKER_BASE + n for n in range(self.arity)]
        sql, params = self.build(*markers).sql()
        order = []
        for param in params:
            found = [n for n, marker in enumerate(markers) if param in (marker, str(marker))]
            if len(found) != 1:
                raise ValueError(f"parameter {param!r} of {sql!r} is not an argument")
            order.append(found[0])
        return sql, order

    def sql(self, arguments):
        database = db.obj
        compiled = self.compiled.get(database)
        if compiled is None:
            compiled = self.compiled[database] = self.compile()
        sql, order = compiled
        return sql, [arguments[n] for n in order]

    def __call__(self, *arguments):
        """The query's rows for `arguments`, as model instances."""
        sql, params = self.sql(arguments)
        return self.model.raw(sql, *params)

    def scalar(self, *arguments):
        """The first column of the first row."""
        row = db.execute_sql(*self.sql(arguments)).fetchone()
        return None if row is None else row[0]

    def first(self, *arguments):
        rows = list(self(*arguments))
        return rows[0] if rows else None
