"""The issue's yardstick: a one-query Flask + peewee app, to measure beside the service.

"A one-query Flask + peewee app with a connection kept open per worker and orjson"
is what the performance issue measured its targets against. This is that app, so
that `make bench BENCH_ARGS=--reference` measures it in the same run as hello-world
and the service: GET reads one row by its key, POST inserts one row. No credential,
no validation, no log line, no index but the key. SQLite in WAL mode, with
`synchronous` from REFERENCE_SYNCHRONOUS (`full`, as the service, or `normal`: no
fsync per commit), at the path in REFERENCE_DATABASE.
"""
import os
import secrets
import time

import orjson
from flask import Flask, Response, request
from peewee import BigIntegerField, CharField, Model, SqliteDatabase, TextField

db = SqliteDatabase(os.environ["REFERENCE_DATABASE"], pragmas={
    "journal_mode": "wal", "busy_timeout": 30_000,
    "synchronous": os.environ.get("REFERENCE_SYNCHRONOUS", "full")})
FIRST_ID = "item_1"


class Item(Model):
    id = CharField(primary_key=True)
    user_id = CharField()
    body = TextField()
    created_at = BigIntegerField()

    class Meta:
        database = db


def json_response(value, status=200):
    return Response(orjson.dumps(value), status=status, content_type="application/json")


with db.connection_context():
    db.create_tables([Item])
    if not Item.select().where(Item.id == FIRST_ID).exists():
        Item.create(id=FIRST_ID, user_id="user", body='{"title": "first"}', created_at=0)

app = Flask(__name__)


@app.before_request
def connect():
    db.connect(reuse_if_open=True)  # kept open by each thread, across requests


@app.get("/healthz")
def healthz():
    return json_response({"status": "ok"})


@app.get("/items/<item_id>")
def get_item(item_id):
    item = Item.get_by_id(item_id)
    return json_response({"id": item.id, "userId": item.user_id,
                          "body": orjson.loads(item.body), "createdAt": item.created_at})


@app.post("/items")
def create_item():
    item = Item.create(id="item_" + secrets.token_urlsafe(12), user_id="user",
                       body=orjson.dumps(orjson.loads(request.get_data())).decode(),
                       created_at=int(time.time() * 1000))
    return json_response({"id": item.id}, status=201)
