"""The ceiling: a hello-world Flask app returning a small JSON object.

Served by bench/ceiling_bench.py with the service's own gunicorn.conf.py, so the
two differ only in what the app does per request.
"""
from flask import Flask

app = Flask(__name__)


@app.get("/healthz")
@app.get("/hello")
def hello():
    return {"hello": "world", "ok": True}
