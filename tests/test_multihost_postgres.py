"""Two hosts, one PostgreSQL: two gunicorn servers on two ports over the same database.

Appends through both servers at once lose nothing and give each session one gap-free total
order; cursor paging across servers neither skips nor repeats while sessions are created;
If-Match holds across servers; the scheduled purge runs one at a time across both. Needs
TEST_DATABASE_URL (skipped without it, except in CI, where that is a failure).
"""
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest
import requests

from databases import drop_database, make_database, require_postgres
from helpers import RUN_LINE, SESSIONS, TIMEOUT, poll
from servers import start_gunicorn


@pytest.fixture(scope="module")
def database():
    require_postgres()
    url = make_database("gs_multihost")
    yield url
    drop_database(url)


@pytest.fixture(scope="module")
def hosts(database, tmp_path_factory):
    """Two servers of 2 workers each on the same database; yields (servers, headers)."""
    with start_gunicorn(tmp_path_factory.mktemp("host_a"), workers=2,
                        DATABASE_URL=database) as host_a, \
            start_gunicorn(tmp_path_factory.mktemp("host_b"), workers=2,
                           DATABASE_URL=database) as host_b:
        key = host_a.create_key("multihost_user")
        yield (host_a, host_b), {"Authorization": f"Bearer {key}"}


def call(method, server, path, headers, **kwargs):
    return requests.request(method, server.url + path, headers=headers, timeout=TIMEOUT,
                            **kwargs)


def test_a_key_made_on_one_host_works_on_the_other(hosts):
    servers, headers = hosts
    assert [call("GET", server, SESSIONS, headers).status_code for server in servers] == [200, 200]


def test_concurrent_appends_through_both_hosts_keep_one_total_order(hosts):
    servers, headers = hosts
    session = call("POST", servers[0], SESSIONS, headers, json={}).json()
    path = f"{SESSIONS}/{session['id']}/events"
    per_thread, threads = 25, 8

    def append(thread):
        ids = []
        with requests.Session() as http:
            for n in range(per_thread):
                server = servers[(thread + n) % 2]
                response = http.post(server.url + path, headers=headers, timeout=TIMEOUT,
                                     json={"type": "progress", "message": f"{thread}-{n}"})
                assert response.status_code == 201, response.text
                ids.append((response.json()["id"], response.json()["sequence"]))
        return ids

    with ThreadPoolExecutor(threads) as pool:
        acknowledged = [item for ids in pool.map(append, range(threads)) for item in ids]

    total = per_thread * threads
    assert sorted(sequence for _, sequence in acknowledged) == list(range(1, total + 1))
    logs = [call("GET", server, path + "?limit=1000", headers).json()["data"]
            for server in servers]
    assert logs[0] == logs[1]  # both hosts serve the same log
    log = logs[0]
    assert [event["sequence"] for event in log] == list(range(1, total + 1))
    assert {event["id"]: event["sequence"] for event in log} == dict(acknowledged)
    times = [event["createdAt"] for event in log]
    assert times == sorted(times)
    # Each writer's own events keep the order it sent them in.
    for thread in range(threads):
        mine = [int(e["message"].split("-")[1]) for e in log
                if e["message"].startswith(f"{thread}-")]
        assert mine == list(range(per_thread))


def test_cursor_paging_across_hosts_neither_skips_nor_repeats_while_sessions_are_created(hosts):
    servers, _ = hosts
    key = servers[1].create_key("pager")
    headers = {"Authorization": f"Bearer {key}"}
    originals = {call("POST", servers[n % 2], SESSIONS, headers, json={}).json()["id"]
                 for n in range(30)}
    stop = threading.Event()
    created_meanwhile = []

    def create_more():
        for n in itertools.count():
            if stop.is_set() or n >= 200:
                return
            response = call("POST", servers[n % 2], SESSIONS, headers, json={})
            created_meanwhile.append(response.json()["id"])

    def page_at(number, cursor):
        query = "?limit=7" + (f"&cursor={cursor}" if cursor else "")
        body = call("GET", servers[number % 2], SESSIONS + query, headers).json()
        return [session["id"] for session in body["data"]], body["pagination"]["nextCursor"]

    seen, cursor = page_at(0, None)
    # From here on, sessions are created through both hosts while the pages are read.
    writer = threading.Thread(target=create_more)
    writer.start()
    try:
        page = 1
        while cursor:
            ids, cursor = page_at(page, cursor)
            seen, page = seen + ids, page + 1
    finally:
        stop.set()
        writer.join()
    assert created_meanwhile, "no session was created while paging"
    assert len(seen) == len(set(seen)), "a session was listed twice"
    assert set(seen) == originals, "a session was skipped, or a newer one listed"


def test_if_match_holds_across_hosts(hosts):
    servers, headers = hosts
    created = call("POST", servers[0], SESSIONS, headers, json={})
    path = f"{SESSIONS}/{created.json()['id']}"
    etag = call("GET", servers[1], path, headers).headers["ETag"]
    assert etag == created.headers["ETag"]
    changed = call("PATCH", servers[1], path, {**headers, "If-Match": etag},
                   json={"status": "planning"})
    assert changed.status_code == 200
    stale = call("PATCH", servers[0], path, {**headers, "If-Match": etag},
                 json={"status": "generating"})
    assert stale.status_code == 412
    assert call("GET", servers[0], path, headers).json()["status"] == "planning"


def test_racing_patches_with_one_etag_through_both_hosts_let_exactly_one_win(hosts):
    servers, headers = hosts
    created = call("POST", servers[0], SESSIONS, headers, json={})
    path, etag = f"{SESSIONS}/{created.json()['id']}", created.headers["ETag"]
    barrier = threading.Barrier(8)

    def patch(n):
        barrier.wait()
        return call("PATCH", servers[n % 2], path, {**headers, "If-Match": etag},
                    json={"plan": {"writer": n}}).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(patch, range(8)))
    assert statuses == [200] + [412] * 7
    session = call("GET", servers[1], path, headers).json()
    events = call("GET", servers[0], path + "/events", headers).json()["data"]
    assert isinstance(session["plan"]["writer"], int) and events == []


# --- the purge across hosts --------------------------------------------------------------

@pytest.fixture(scope="module")
def purging_hosts(tmp_path_factory):
    """Two servers purging every second (sessions live 1 s) over a fresh database."""
    require_postgres()
    url = make_database("gs_multipurge")
    settings = dict(DATABASE_URL=url, PURGE_SCHEDULE="* * * * * *", SESSION_TTL="1",
                    PURGE_BATCH_SIZE="5", PURGE_BATCH_PAUSE_MS="20")
    try:
        with start_gunicorn(tmp_path_factory.mktemp("purge_a"), workers=2, **settings) as a, \
                start_gunicorn(tmp_path_factory.mktemp("purge_b"), workers=2, **settings) as b:
            yield (a, b), url
    finally:
        drop_database(url)


def count_rows(url, table):
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {table}")
            return cursor.fetchone()[0]
    finally:
        connection.close()


def purge_runs(servers):
    runs = []
    for host, server in enumerate(servers):
        for match in RUN_LINE.finditer(server.log()):
            pid, purged, _, started, finished = map(int, match.groups())
            runs.append({"host": host, "pid": pid, "purged": purged,
                         "started_at": started, "finished_at": finished})
    return sorted(runs, key=lambda run: run["started_at"])


def test_the_purge_runs_one_at_a_time_across_hosts_and_removes_every_expired_session(
        purging_hosts):
    servers, url = purging_hosts
    key = servers[0].create_key("purged_user")
    headers = {"Authorization": f"Bearer {key}"}
    created = 0
    for round_ in range(3):
        for n in range(20):
            server = servers[n % 2]
            session = call("POST", server, SESSIONS, headers, json={}).json()
            call("POST", server, f"{SESSIONS}/{session['id']}/events", headers,
                 json={"type": "info"})
            created += 1
    assert poll(lambda: count_rows(url, "session") == 0, TIMEOUT), "expired sessions remain"
    assert count_rows(url, "event") == 0
    assert poll(lambda: sum(r["purged"] for r in purge_runs(servers)) == created, TIMEOUT)
    runs = purge_runs(servers)
    assert runs
    for earlier, later in zip(runs, runs[1:]):
        assert earlier["finished_at"] <= later["started_at"], (earlier, later)
