"""The hot queries, built by peewee once per database and then run as kept SQL text.

Reads return model instances; writes (`execute`) take every column as an argument.

Building a SELECT with peewee costs 0.3-0.7 ms (its SQL is generated anew each time),
more than SQLite takes to answer it. A `Prepared` query is written as ordinary peewee
code, turned into SQL the first time it runs on a database, and from then on only gets
new parameter values; rows come back as model instances, through the fields' own
conversions, as from the query itself.
"""
from weakref import WeakKeyDictionary

from peewee import BigIntegerField, CharField, IntegerField, TextField

from .database import db

# Columns both databases hand back as the Python value itself (str, int): no conversion.
STORED_AS_IS = (CharField, TextField, IntegerField, BigIntegerField)

# Stand-ins for the arguments while the SQL is built: numbers no caller passes.
MARKER_BASE = 7_340_000_000_000_000


class Prepared:
    """`build(*arguments)` -> a peewee query of `model` whose parameters are the arguments.

    `fields` (for writes) names, per argument, the model field whose db_value turns a
    value into what the database takes (e.g. JSON maps into text).
    """

    def __init__(self, model, build, fields=None, arity=None):
        self.model = model
        self.build = build
        self.arity = arity if arity is not None else build.__code__.co_argcount
        self.converters = [field.db_value for field in fields] if fields else None
        self.compiled = WeakKeyDictionary()  # database -> (sql, argument index of each param)
        self.makers = {}  # the columns of a result -> the function making an instance of a row

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
        cursor = db.execute_sql(*self.sql(arguments))
        return self.instances(cursor, cursor.fetchall())

    def instances(self, cursor, rows):
        """`rows` as model instances, the same as peewee's own cursor wrapper makes them
        (values through the fields' python_value), without its per-row column resolution
        (half of a GET's time went there)."""
        columns = tuple(description[0] for description in cursor.description)
        make = self.makers.get(columns)
        if make is None:
            make = self.makers[columns] = instance_maker(self.model, columns)
        return [make(row) for row in rows]

    def execute(self, *arguments):
        """Run a write with `arguments` (converted by the fields); return the row count."""
        if self.converters:
            arguments = [None if value is None else convert(value)
                         for convert, value in zip(self.converters, arguments)]
        return db.execute_sql(*self.sql(arguments)).rowcount

    def scalar(self, *arguments):
        """The first column of the first row."""
        row = db.execute_sql(*self.sql(arguments)).fetchone()
        return None if row is None else row[0]

    def first(self, *arguments):
        """The first row as a model instance, or None."""
        cursor = db.execute_sql(*self.sql(arguments))
        row = cursor.fetchone()
        return None if row is None else self.instances(cursor, [row])[0]


def instance_maker(model, columns):
    """A function making a `model` instance of a row with `columns`, written out for them:
    what Model(__no_default__=1) sets up, without its keyword processing, and each value
    through its field's python_value where it needs one (text and numbers arrive as they
    are stored). A 10,000-event log: 10 ms of instances where peewee's wrapper took 25 and a
    loop over the columns 18."""
    fields = model._meta.columns
    names = {"new": object.__new__, "model": model}
    values = []
    for n, column in enumerate(columns):
        field = fields[column]
        if isinstance(field, STORED_AS_IS):
            values.append(f"{field.name!r}: row[{n}]")
        else:
            names[f"convert_{n}"] = field.python_value
            values.append(f"{field.name!r}: None if row[{n}] is None else convert_{n}(row[{n}])")
    code = ("def make(row):\n"
            "    instance = new(model)\n"
            f"    instance.__data__ = {{{', '.join(values)}}}\n"
            "    instance._dirty = set()\n"
            "    instance.__rel__ = {}\n"
            "    return instance\n")
    exec(code, names)  # noqa: S102 (code made from the model's own field names)
    return names["make"]


class RowWriter:
    """INSERT of whole rows of `model`, and UPDATE (by primary key) of some columns, as kept SQL."""

    def __init__(self, model):
        self.model = model
        self.fields = list(model._meta.sorted_fields)
        self.inserting = Prepared(model, lambda *values: model.insert(
            dict(zip(self.fields, values))), self.fields, arity=len(self.fields))
        self.updating = {}  # frozenset of field names -> (Prepared, the fields in its order)

    def insert(self, instance):
        """Insert `instance` (its defaults already applied by the model's constructor)."""
        data = instance.__data__
        self.inserting.execute(*[data.get(field.name) for field in self.fields])
        return instance

    def update(self, instance):
        """Write the fields of `instance` set since it was read to its row; return the row count.

        Only those columns (peewee's `dirty_fields`): SQLite rewrites every index holding a
        column the statement sets, changed or not (all five of a session's, for a PATCH of
        its plan; raw SQLite, such a transaction took 36 us of CPU, 19 with only its columns).
        """
        names = frozenset(field.name for field in instance.dirty_fields)
        if not names:
            return 0
        kept = self.updating.get(names)
        if kept is None:
            kept = self.updating[names] = self.updater(names)
        updating, fields = kept
        data = instance.__data__
        count = updating.execute(*[data.get(field.name) for field in fields], instance.get_id())
        instance._dirty.clear()  # as Model.save() leaves it
        return count

    def updater(self, names):
        key = self.model._meta.primary_key
        fields = [field for field in self.fields if field.name in names and field is not key]
        if len(fields) != len(names):
            raise ValueError(f"not updatable columns of {self.model.__name__}: {sorted(names)}")
        return Prepared(self.model, lambda *values: self.model.update(
            dict(zip(fields, values))).where(key == values[-1]), [*fields, key],
            arity=len(fields) + 1), fields
