"""A real gunicorn with 4 workers on a SQLite file, driven by concurrent client processes."""
import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from helpers import SESSIONS, TIMEOUT, all_events, wait_until
from servers import start_gunicorn

CLIENTS = 8
APPENDS = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_gunicorn(tmp_path_factory.mktemp("gunicorn"), workers=4) as server:
        yield server


def run_processes(target, args_list, results, timeout=60):
    """Start one spawned process per args, collect one result from each, never leak them."""
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=target, args=args, daemon=True) for args in args_list]
    try:
        for process in processes:
            process.start()
        collected = [results.get(timeout=timeout) for _ in processes]
        for process in processes:
            process.join(timeout=10)
        return collected
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        results.close()
        results.join_thread()


# --- concurrent appends --------------------------------------------------------------------

def append_client(url, key, shared_id, index, barrier, results):
    """One client: create its own session, then append to the shared one and its own."""
    headers = {"Authorization": f"Bearer {key}"}
    report = {"index": index, "acks": [], "failures": []}
    try:
        with requests.Session() as http:
            own = http.post(url + SESSIONS, json={}, headers=headers, timeout=TIMEOUT)
            report["own_id"] = own.json()["id"]
            barrier.wait(timeout=TIMEOUT)
            for n in range(APPENDS):
                for target in (shared_id, report["own_id"]):
                    response = http.post(f"{url}{SESSIONS}/{target}/events",
                                         json={"type": "progress", "message": f"{index}:{n}"},
                                         headers=headers, timeout=TIMEOUT)
                    if response.status_code == 201:
                        event = response.json()
                        report["acks"].append((target, event["id"], event["sequence"]))
                    else:
                        report["failures"].append((target, response.status_code, response.text))
    except Exception as error:  # reported to the parent, which fails the test
        report["failures"].append(("exception", repr(error)))
    results.put(report)


@pytest.fixture(scope="module")
def appends(server):
    """Run the 8 appending clients once; return (shared session id, their reports, headers)."""
    key = server.create_key("appender")
    headers = {"Authorization": f"Bearer {key}"}
    shared = requests.post(server.url + SESSIONS, json={}, headers=headers, timeout=TIMEOUT)
    assert shared.status_code == 201
    shared_id = shared.json()["id"]
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(CLIENTS), context.Queue()
    reports = run_processes(append_client, [(server.url, key, shared_id, index, barrier, results)
                                            for index in range(CLIENTS)], results)
    return shared_id, sorted(reports, key=lambda report: report["index"]), headers


def test_every_concurrent_append_is_acknowledged_with_201(appends):
    _, reports, _ = appends
    assert [report["failures"] for report in reports] == [[]] * CLIENTS
    assert [len(report["acks"]) for report in reports] == [2 * APPENDS] * CLIENTS


def test_shared_session_has_sequences_1_to_160_without_gap(server, appends):
    shared_id, _, headers = appends
    events = all_events(requests, server.url, shared_id, headers)
    assert [event["sequence"] for event in events] == list(range(1, CLIENTS * APPENDS + 1))
    assert len({event["id"] for event in events}) == CLIENTS * APPENDS


def test_shared_session_holds_exactly_the_acknowledged_events(server, appends):
    shared_id, reports, headers = appends
    events = all_events(requests, server.url, shared_id, headers)
    stored = {(e["id"], e["sequence"]) for e in events}
    acked = {(event_id, sequence) for report in reports
             for target, event_id, sequence in report["acks"] if target == shared_id}
    assert stored == acked


def test_each_clients_events_keep_the_order_it_received_them(server, appends):
    shared_id, reports, headers = appends
    stored = {e["id"]: e for e in all_events(requests, server.url, shared_id, headers)}
    for report in reports:
        mine = [event_id for target, event_id, _ in report["acks"] if target == shared_id]
        assert len(mine) == APPENDS
        sequences = [stored[event_id]["sequence"] for event_id in mine]
        assert sequences == sorted(sequences), report["index"]
        assert [stored[event_id]["message"] for event_id in mine] == [
            f"{report['index']}:{n}" for n in range(APPENDS)]


def test_each_clients_own_session_has_sequences_1_to_20(server, appends):
    _, reports, headers = appends
    for report in reports:
        events = all_events(requests, server.url, report["own_id"], headers)
        assert [event["sequence"] for event in events] == list(range(1, APPENDS + 1))
        acked = [event_id for target, event_id, _ in report["acks"]
                 if target == report["own_id"]]
        assert [event["id"] for event in events] == acked


def test_event_times_never_go_backwards(server, appends):
    shared_id, _, headers = appends
    times = [event["createdAt"] for event in all_events(requests, server.url, shared_id, headers)]
    assert times == sorted(times)


def test_no_database_is_locked_in_the_server_log(server, appends):
    log = server.log()
    assert "database is locked" not in log
    assert "Traceback" not in log


# --- paging while sessions are created -----------------------------------------------------

def create_client(url, key, go, stop_flag, created_count, results):
    """Create sessions one after another from `go` until `stop_flag`; report their ids."""
    headers = {"Authorization": f"Bearer {key}"}
    report = {"ids": [], "failures": []}
    try:
        with requests.Session() as http:
            go.wait(timeout=TIMEOUT)
            deadline = time.monotonic() + TIMEOUT
            while not stop_flag.is_set() and time.monotonic() < deadline:
                response = http.post(url + SESSIONS, json={}, headers=headers, timeout=TIMEOUT)
                if response.status_code == 201:
                    report["ids"].append(response.json()["id"])
                    with created_count.get_lock():
                        created_count.value += 1
                else:
                    report["failures"].append((response.status_code, response.text))
    except Exception as error:  # reported to the parent, which fails the test
        report["failures"].append(("exception", repr(error)))
    results.put(report)


@pytest.fixture(scope="module")
def paging(server):
    """Page through a user's list 2 at a time while 4 processes create sessions in between.

    Returns (ids existing before paging, pages seen, creators' reports, creations during paging).
    """
    key = server.create_key("pager")
    headers = {"Authorization": f"Bearer {key}"}
    with requests.Session() as http:
        before = [http.post(server.url + SESSIONS, json={}, headers=headers,
                            timeout=TIMEOUT).json()["id"] for _ in range(25)]
    context = multiprocessing.get_context("spawn")
    go, stop_flag, results = context.Event(), context.Event(), context.Queue()
    created_count = context.Value("i", 0)
    pages = []

    def page_through():
        with requests.Session() as http:
            cursor = None
            while True:
                query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
                page = http.get(server.url + SESSIONS + query, headers=headers,
                                timeout=TIMEOUT).json()
                pages.append(page)
                go.set()
                cursor = page["pagination"]["nextCursor"]
                if cursor is None:
                    return
                seen = created_count.value
                # at least one session is created between any two pages
                wait_until(lambda: created_count.value > seen, 10, "a concurrent creation")

    creators = ThreadPoolExecutor(max_workers=1)
    try:
        future = creators.submit(
            run_processes, create_client,
            [(server.url, key, go, stop_flag, created_count, results) for _ in range(4)],
            results)
        try:
            page_through()
        finally:
            go.set()
            stop_flag.set()
        reports = future.result(timeout=60)
    finally:
        creators.shutdown(wait=True)
    return before, pages, reports, created_count.value


def test_creators_get_201_while_the_list_is_paged(paging):
    _, _, reports, created = paging
    assert [report["failures"] for report in reports] == [[]] * 4
    assert sum(len(report["ids"]) for report in reports) == created


def test_paging_never_repeats_a_session(paging):
    _, pages, _, _ = paging
    ids = [session["id"] for page in pages for session in page["data"]]
    assert len(ids) == len(set(ids))


def test_paging_sees_every_session_that_existed_before_it_started(paging):
    before, pages, _, _ = paging
    ids = {session["id"] for page in pages for session in page["data"]}
    assert set(before) <= ids


def test_paging_sees_only_the_users_sessions(paging):
    before, pages, reports, _ = paging
    known = set(before) | {session_id for report in reports for session_id in report["ids"]}
    assert {s["id"] for page in pages for s in page["data"]} <= known


def test_pages_are_newest_first_across_pages(paging):
    _, pages, _, _ = paging
    keys = [(s["createdAt"], s["id"]) for page in pages for s in page["data"]]
    assert keys == sorted(keys, reverse=True)


# --- revocation reaches every worker -------------------------------------------------------

def status_codes(url, headers, count):
    """`count` GETs at once, each on a fresh connection (so spread over the workers)."""
    def get(_):
        return requests.get(url + SESSIONS, headers=headers, timeout=TIMEOUT).status_code
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(get, range(count)))


def test_revoked_key_is_refused_by_every_worker_at_once(server):
    key = server.create_key("revokee")
    headers = {"Authorization": f"Bearer {key}"}
    assert status_codes(server.url, headers, 20) == [200] * 20
    server.flask("revoke-key", key.split("_")[1])
    assert status_codes(server.url, headers, 20) == [401] * 20


def test_revoke_key_of_an_unknown_id_fails(server):
    assert server.flask("revoke-key", "0123456789ab", check=False).returncode != 0
