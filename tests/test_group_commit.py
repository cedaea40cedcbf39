"""Group commit (models/base.py) under a real gunicorn: many writes in the same instant.

On SQLite the writes of one process that wait for the write lock together run in one
transaction on whichever thread gets the lock (again, each piece in its own savepoint, when
one of them fails), and every waiting thread is handed back its own result or its own
error. That only happens under concurrency, so each burst below sends a few hundred
requests from 32 client threads, released together by a barrier, to gunicorn with 2
workers, mixing writes that must succeed with writes the model must refuse, and then
checks through the API that

* every answer has the status of its own request and a body that belongs to it (each write
  carries a marker of its own that the answer echoes), and no two callers got one result;
* every acknowledged write is stored, and a refused one left no trace (a piece of work that
  fails undoes only itself, never the others committed with it);
* nothing answered 5xx, and the server log holds no traceback and no "database is locked".
"""
import random
import sqlite3
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field

import orjson
import pytest
import requests

from helpers import NOW, SESSIONS, STATUSES, TERMINAL, TIMEOUT
from servers import start_gunicorn

LANES = 32  # client threads of a burst, each with its own connection
NOT_FOUND = {"error": "Session not found"}
STALE = {"error": "The session has changed since the ETag in If-Match"}
MISSING = "<missing>"


# --- sending bursts ------------------------------------------------------------------------

@dataclass
class Call:
    """One request, the answer it must get, and (once sent) the answer it got."""
    method: str
    path: str
    key: str
    json: object = None
    headers: dict = field(default_factory=dict)
    expect: int = 200
    want: dict = field(default_factory=dict)  # fields the JSON answer must hold, as given
    tag: tuple = ()  # what the call is about, for the checks after the burst
    request_id: str = None
    status: int = None
    body: object = None
    answer_headers: object = None
    sent: float = None
    received: float = None

    def send(self, http, url):
        self.request_id = uuid.uuid4().hex
        headers = {"Authorization": f"Bearer {self.key}", "X-Request-Id": self.request_id,
                   **self.headers}
        self.sent = time.monotonic()
        try:
            response = http.request(self.method, url + self.path, json=self.json,
                                    headers=headers, timeout=TIMEOUT)
        except requests.RequestException as error:
            self.received, self.body = time.monotonic(), repr(error)
            return
        self.received = time.monotonic()
        self.status, self.answer_headers = response.status_code, response.headers
        try:
            self.body = response.json() if response.content else None
        except ValueError:
            self.body = response.text

    def session(self):
        """The answer without its event log: what a write answers for the same session."""
        return {name: value for name, value in self.body.items() if name != "events"}


def burst(url, lanes):
    """Run each lane (a list of calls, in order) on its own thread and connection, all
    starting at the same instant; return every call, answered."""
    barrier = threading.Barrier(len(lanes))

    def run(lane):
        with requests.Session() as http:
            barrier.wait(timeout=TIMEOUT)
            for call in lane:
                call.send(http, url)

    with ThreadPoolExecutor(max_workers=len(lanes)) as pool:
        for future in [pool.submit(run, lane) for lane in lanes]:
            future.result(timeout=120)
    return [call for lane in lanes for call in lane]


def deal(calls, seed, lanes=LANES):
    """Shuffle `calls` (with a fixed seed) and deal them out to `lanes` lanes."""
    calls = list(calls)
    random.Random(seed).shuffle(calls)
    return [calls[n::lanes] for n in range(lanes)]


def read_all(url, calls):
    """Send `calls` (reads after a burst) concurrently; the tests check what they got."""
    return burst(url, deal(calls, 0))


def body_of(read, status=200):
    """The answer to a read after a burst, which must have answered `status`."""
    assert read.status == status, (read.method, read.path, read.status, read.body)
    return read.body


def prepare(url, calls):
    """Set-up writes, one at a time, each required to get its expected status. None waits
    for another, so none is grouped: a bug in grouping shows in a burst's own checks."""
    calls = burst(url, [calls])
    wrong = [(call.method, call.path, call.status, call.body) for call in calls
             if call.status != call.expect]
    assert not wrong, wrong[:10]
    return calls


def comparable(body):
    """An answer with its `details` reduced to code, path and message: what tells one error
    apart from another (the suggestion's wording is the error handler's business)."""
    if isinstance(body, dict) and isinstance(body.get("details"), list):
        body = {**body, "details": [{name: item.get(name) for name in ("code", "path", "message")}
                                    for item in body["details"]]}
    return body


def mismatches(calls):
    """The calls whose answer is not the one of their own request: status, the fields in
    `want`, or the echoed X-Request-Id."""
    wrong = []
    for call in calls:
        problems = []
        if call.status != call.expect:
            problems.append(f"status {call.status}, expected {call.expect}: {call.body!r:.300}")
        else:
            body = comparable(call.body) if isinstance(call.body, dict) else {}
            problems += [f"{name} = {body.get(name, MISSING)!r}, expected {value!r}"
                         for name, value in comparable(call.want).items()
                         if body.get(name, MISSING) != value]
            if call.answer_headers.get("X-Request-Id") != call.request_id:
                problems.append("X-Request-Id of another request")
        if problems:
            wrong.append((call.method, call.path, call.tag, problems))
    return wrong


def get(key, session_id, expect=200, tag=()):
    return Call("GET", f"{SESSIONS}/{session_id}", key, expect=expect, tag=tag)


def append(key, session_id, message, payload, expect=201, **want):
    body = {"type": "progress", "message": message, "payload": payload}
    if expect == 201:
        want = {"sessionId": session_id, "type": "progress", "message": message,
                "payload": payload, **want}
    return Call("POST", f"{SESSIONS}/{session_id}/events", key, body, expect=expect,
                want=want if expect == 201 else NOT_FOUND, tag=("append", session_id, message))


def refused_transition(current, target):
    return {"error": "Invalid status transition", "details": [{
        "code": "CUSTOM_VALIDATION", "path": "status",
        "message": f"Cannot change status from {current} to {target}"}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_gunicorn(tmp_path_factory.mktemp("group_commit"), workers=2,
                        forbid_traceback=True) as server:
        yield server


# --- 1. failing and succeeding writes in the same instant ----------------------------------

MIXER = ("mixer", "org_mix")
KINDS = {  # sessions of each kind made before the burst, and what the burst does to them
    "append": 24,          # 8 appends each: 201
    "patch": 32,           # status -> planning, with a plan of its own: 200
    "patch_if_match": 16,  # status -> generating with the current ETag in If-Match: 200
    "delete": 16,          # DELETE with the current ETag in If-Match: 204
    "terminal": 48,        # completed/failed/cancelled, asked for another status: 409
    "stale": 32,           # PATCH or DELETE with an ETag of an older revision: 412
    "deleted": 24,         # deleted before the burst; append and PATCH: 404
}
APPENDS_EACH = 8
FOREIGN = 16  # the bystander's sessions, which the mixer appends to, patches and deletes: 404
CREATES = 64


@pytest.fixture(scope="module")
def mixed(server):
    """One burst of 496 writes by one user, of which 176 must be refused by the model.

    Returns a dict: the burst's calls, the set-up and after-burst reads, the ids by kind.
    """
    url = server.url
    key = server.create_key(*MIXER)
    bystander = server.create_key("bystander", "org_by")
    made = prepare(url, [
        Call("POST", SESSIONS, key, {"prd": {"kind": kind, "n": n}}, expect=201, tag=(kind,))
        for kind, count in KINDS.items() for n in range(count)] + [
        Call("POST", SESSIONS, bystander, {"prd": {"kind": "foreign", "n": n}}, expect=201,
             tag=("foreign",)) for n in range(FOREIGN)])
    ids, first_etag = defaultdict(list), {}
    for call in made:
        ids[call.tag[0]].append(call.body["id"])
        first_etag[call.body["id"]] = call.answer_headers["ETag"]
    terminal_status = {sid: TERMINAL[n % 3] for n, sid in enumerate(ids["terminal"])}
    prepare(url, [
        *(Call("PATCH", f"{SESSIONS}/{sid}", key, {"status": status})
          for sid, status in terminal_status.items()),
        *(Call("PATCH", f"{SESSIONS}/{sid}", key, {"plan": {"revision": 2}})
          for sid in ids["stale"]),
        *(Call("DELETE", f"{SESSIONS}/{sid}", key, expect=204) for sid in ids["deleted"]),
        *(append(bystander, sid, "bystander's own", {"mine": True}) for sid in ids["foreign"]),
    ])
    before = {call.tag[0]: call for call in read_all(url, [
        *(get(key, sid, tag=(sid,)) for sid in ids["terminal"] + ids["stale"]),
        *(get(bystander, sid, tag=(sid,)) for sid in ids["foreign"])])}
    for read in before.values():
        body_of(read)

    calls = []
    for sid in ids["append"]:
        for n in range(APPENDS_EACH):
            marker = f"mix:{sid}:{n}"
            call = append(key, sid, marker, {"marker": marker, "n": n},
                          userId=MIXER[0], organizationId=MIXER[1], stage="intake")
            if n % 2:  # an explicit stage of its own, echoed too
                call.json["stage"] = call.want["stage"] = f"stage-{n}"
            calls.append(call)
    for n, sid in enumerate(ids["patch"]):
        change = {"status": "planning", "plan": {"patch": n, "of": sid}}
        calls.append(Call("PATCH", f"{SESSIONS}/{sid}", key, change, tag=("patch", sid),
                          want={"id": sid, "userId": MIXER[0], **change}))
    for n, sid in enumerate(ids["patch_if_match"]):
        change = {"status": "generating", "plan": {"patch_if_match": n, "of": sid}}
        calls.append(Call("PATCH", f"{SESSIONS}/{sid}", key, change,
                          {"If-Match": first_etag[sid]}, tag=("patch", sid),
                          want={"id": sid, "userId": MIXER[0], **change}))
    for sid in ids["delete"]:
        calls.append(Call("DELETE", f"{SESSIONS}/{sid}", key, headers={"If-Match": first_etag[sid]},
                          expect=204, tag=("delete", sid)))
    for n, sid in enumerate(ids["terminal"]):
        current = terminal_status[sid]
        target = [status for status in STATUSES if status != current][n % 6]
        calls.append(Call("PATCH", f"{SESSIONS}/{sid}", key,
                          {"status": target, "plan": {"sneaky": n}}, expect=409,
                          want=refused_transition(current, target), tag=("terminal", sid)))
    for n, sid in enumerate(ids["stale"]):
        stale = {"If-Match": first_etag[sid]}
        if n % 2:
            calls.append(Call("DELETE", f"{SESSIONS}/{sid}", key, headers=stale, expect=412,
                              want=STALE, tag=("stale", sid)))
        else:
            calls.append(Call("PATCH", f"{SESSIONS}/{sid}", key, {"plan": {"stale": n}}, stale,
                              expect=412, want=STALE, tag=("stale", sid)))
    for n, sid in enumerate(ids["deleted"]):
        calls.append(append(key, sid, f"to deleted {n}", {"n": n}, expect=404))
        calls.append(Call("PATCH", f"{SESSIONS}/{sid}", key, {"plan": {"n": n}}, expect=404,
                          want=NOT_FOUND, tag=("deleted", sid)))
    for n, sid in enumerate(ids["foreign"]):
        calls.append(append(key, sid, f"to foreign {n}", {"n": n}, expect=404))
        calls.append(Call("PATCH", f"{SESSIONS}/{sid}", key, {"status": "failed"}, expect=404,
                          want=NOT_FOUND, tag=("foreign", sid)))
        calls.append(Call("DELETE", f"{SESSIONS}/{sid}", key, expect=404, want=NOT_FOUND,
                          tag=("foreign", sid)))
    for n in range(CREATES):
        prd = {"title": f"created in the burst #{n}"}
        calls.append(Call("POST", SESSIONS, key, {"prd": prd}, expect=201, tag=("create", n),
                          want={"prd": prd, "plan": None, "status": "intake",
                                "userId": MIXER[0], "organizationId": MIXER[1]}))
    assert len(calls) == 496
    calls = burst(url, deal(calls, seed=1))

    created = [call.body["id"] for call in calls if call.tag[0] == "create" and call.status == 201]
    kept = ("append", "patch", "patch_if_match", "terminal", "stale")
    after = {call.tag[0]: call for call in read_all(url, [
        *(get(key, sid, tag=(sid,)) for kind in kept for sid in ids[kind]),
        *(get(key, sid, tag=(sid,)) for sid in created),
        *(get(key, sid, tag=(sid,)) for sid in ids["deleted"] + ids["delete"]),
        *(get(bystander, sid, tag=(sid,)) for sid in ids["foreign"])])}
    listing = requests.get(f"{url}{SESSIONS}?limit=1", timeout=TIMEOUT,
                           headers={"Authorization": f"Bearer {key}"}).json()
    return {"calls": calls, "ids": ids, "before": before, "after": after, "setup": made,
            "total": listing["pagination"]["total"]}


def test_mixed_burst_answers_each_request_with_its_own_outcome(mixed):
    calls = mixed["calls"]
    assert mismatches(calls) == []
    assert Counter(call.status for call in calls) == {201: 192 + CREATES, 200: 48, 204: 16,
                                                      404: 48 + 3 * FOREIGN, 409: 48, 412: 32}


def test_mixed_burst_hands_no_result_to_two_callers(mixed):
    calls = mixed["calls"]
    events = [call.body["id"] for call in calls if call.tag[0] == "append" and call.status == 201]
    created = [call.body["id"] for call in calls if call.tag[0] == "create" and call.status == 201]
    assert len(set(events)) == len(events) == 192
    assert len(set(created)) == len(created) == CREATES
    existing = {call.body["id"] for call in mixed["setup"]}
    assert not existing & set(created)
    etags = [call.answer_headers["ETag"] for call in calls if call.status in (200, 201)
             and call.tag[0] in ("patch", "create")]
    assert len(set(etags)) == len(etags)


def test_mixed_burst_stores_every_acknowledged_write(mixed):
    calls, after, ids = mixed["calls"], mixed["after"], mixed["ids"]
    acked = defaultdict(list)
    for call in calls:
        if call.tag[0] == "append":
            acked[call.tag[1]].append(call.body)
    for sid in ids["append"]:
        stored = body_of(after[sid])["events"]
        assert sorted(acked[sid], key=lambda event: event["sequence"]) == stored
        assert [event["sequence"] for event in stored] == list(range(1, APPENDS_EACH + 1))
    for call in calls:
        if call.tag[0] == "patch":
            stored = after[call.tag[1]]
            body_of(stored)
            assert stored.session() == call.body
            assert stored.answer_headers["ETag"] == call.answer_headers["ETag"]
            [event] = stored.body["events"]
            assert (event["type"], event["payload"]) == (
                "status.changed", {"from": "intake", "to": call.json["status"]})
        elif call.tag[0] == "create":
            stored = after[call.body["id"]]
            assert body_of(stored) == {**call.body, "events": []}
            assert stored.answer_headers["ETag"] == call.answer_headers["ETag"]
            assert call.answer_headers["Location"] == f"{SESSIONS}/{call.body['id']}"
    for sid in ids["delete"]:
        assert body_of(after[sid], 404) == NOT_FOUND
    kept = ("append", "patch", "patch_if_match", "terminal", "stale")
    assert mixed["total"] == sum(KINDS[kind] for kind in kept) + CREATES


def test_mixed_burst_refused_writes_leave_no_trace(mixed):
    before, after, ids = mixed["before"], mixed["after"], mixed["ids"]
    for sid in ids["terminal"] + ids["stale"] + ids["foreign"]:
        assert body_of(after[sid]) == before[sid].body, sid
        assert after[sid].answer_headers["ETag"] == before[sid].answer_headers["ETag"], sid
    for sid in ids["terminal"]:
        assert [event["type"] for event in after[sid].body["events"]] == ["status.changed"]
    for sid in ids["foreign"]:
        assert [event["message"] for event in after[sid].body["events"]] == ["bystander's own"]
    for sid in ids["deleted"]:
        assert body_of(after[sid], 404) == NOT_FOUND


# --- 2. two users writing at once ----------------------------------------------------------

USERS = {"alice": "org_a", "bob": "org_b"}
OWN_SESSIONS = 16
USER_CREATES = 48
USER_APPENDS = 128
USER_PATCHES = 32
INTRUSIONS = 16  # appends and as many PATCHes to the other user's sessions: 404


@pytest.fixture(scope="module")
def two_users(server):
    """Alice's and Bob's writes interleaved in one burst of 480; returns what each got and
    what each user's sessions hold afterwards."""
    url = server.url
    keys = {user: server.create_key(user, org) for user, org in USERS.items()}
    made = prepare(url, [Call("POST", SESSIONS, keys[user], {"prd": {"owner": user}},
                              expect=201, tag=(user,))
                         for user in USERS for _ in range(OWN_SESSIONS)])
    own = defaultdict(list)
    for call in made:
        own[call.tag[0]].append(call.body["id"])
    calls = []
    for user, other in (("alice", "bob"), ("bob", "alice")):
        key, mine = keys[user], {"userId": user, "organizationId": USERS[user]}
        for n in range(USER_CREATES):
            prd = {"owner": user, "n": n}
            calls.append(Call("POST", SESSIONS, key, {"prd": prd}, expect=201,
                              want={"prd": prd, **mine}, tag=("create", user)))
        for n in range(USER_APPENDS):
            marker = f"{user}:{n}"
            calls.append(append(key, own[user][n % OWN_SESSIONS], marker,
                                {"owner": user, "n": n}, **mine))
        for n in range(USER_PATCHES):
            sid, plan = own[user][n % OWN_SESSIONS], {"owner": user, "n": n}
            calls.append(Call("PATCH", f"{SESSIONS}/{sid}", key, {"plan": plan},
                              want={"id": sid, "plan": plan, **mine}, tag=("patch", sid)))
        for n in range(INTRUSIONS):
            sid = own[other][n % OWN_SESSIONS]
            calls.append(append(key, sid, f"{user}:intruder:{n}", {"owner": user}, expect=404))
            calls.append(Call("PATCH", f"{SESSIONS}/{sid}", key, {"plan": {"owner": user}},
                              expect=404, want=NOT_FOUND, tag=("intrusion", sid)))
    assert len(calls) == 480
    calls = burst(url, deal(calls, seed=2))

    listed, stored = {}, {}
    for user, key in keys.items():
        listed[user], cursor = [], None
        with requests.Session() as http:
            while True:
                page = http.get(f"{url}{SESSIONS}?limit=100" + (f"&cursor={cursor}" if cursor
                                                                else ""),
                                headers={"Authorization": f"Bearer {key}"},
                                timeout=TIMEOUT).json()
                listed[user] += page["data"]
                cursor = page["pagination"]["nextCursor"]
                if cursor is None:
                    break
        stored[user] = {call.tag[0]: call for call in read_all(
            url, [get(key, session["id"], tag=(session["id"],)) for session in listed[user]])}
    return {"calls": calls, "own": own, "listed": listed, "stored": stored}


def test_two_users_each_answer_belongs_to_its_own_request(two_users):
    calls = two_users["calls"]
    assert mismatches(calls) == []
    assert Counter(call.status for call in calls) == {
        201: 2 * (USER_CREATES + USER_APPENDS), 200: 2 * USER_PATCHES, 404: 4 * INTRUSIONS}


def test_two_users_each_stored_session_holds_only_its_users_data(two_users):
    calls, own, listed, stored = (two_users[name] for name in ("calls", "own", "listed",
                                                               "stored"))
    appended, plans, etags = defaultdict(list), defaultdict(list), {}
    for call in calls:
        if call.tag[0] == "append" and call.status == 201:
            appended[call.tag[1]].append(call.body)
        elif call.tag[0] == "patch" and call.status == 200:
            plans[call.tag[1]].append(call.json["plan"])
            etags[call.tag[1], orjson.dumps(call.json["plan"])] = call.answer_headers["ETag"]
    for user, org in USERS.items():
        created = {call.body["id"] for call in calls if call.tag == ("create", user)}
        assert len(created) == USER_CREATES
        ids = [session["id"] for session in listed[user]]
        assert len(ids) == len(set(ids)) == OWN_SESSIONS + USER_CREATES
        assert set(ids) == set(own[user]) | created
        for sid, read in stored[user].items():
            session = body_of(read)
            assert (session["userId"], session["organizationId"]) == (user, org), sid
            assert session["prd"]["owner"] == user
            assert all((event["userId"], event["organizationId"]) == (user, org)
                       for event in session["events"]), sid
            # every event is one of this user's acknowledged appends, and every one is there
            by_sequence = sorted(appended[sid], key=lambda event: event["sequence"])
            assert session["events"] == by_sequence, sid
            if sid in created:
                assert session["plan"] is None and session["events"] == []
            else:
                assert len(session["events"]) == USER_APPENDS // OWN_SESSIONS
                # one of the session's own acknowledged PATCHes, with that PATCH's ETag
                assert len(plans[sid]) == USER_PATCHES // OWN_SESSIONS
                assert session["plan"] in plans[sid], sid
                assert read.answer_headers["ETag"] == etags[sid, orjson.dumps(session["plan"])]


# --- 3. deletes racing appends on the same sessions ----------------------------------------

RACED = 24
DELETED = 16  # the first 16 of the raced sessions are deleted halfway through the burst
RACE_APPENDS = 16


@pytest.fixture(scope="module")
def delete_race(server):
    """Each of 24 sessions gets 16 appends from 16 lanes; 16 of the sessions are deleted
    in the middle of a lane meanwhile. Returns the calls and the reads afterwards."""
    url = server.url
    key = server.create_key("racer", "org_race")
    sids = [call.body["id"] for call in prepare(
        url, [Call("POST", SESSIONS, key, {}, expect=201) for _ in range(RACED)])]
    setup = prepare(url, [append(key, sid, f"before:{n}", {"n": n})
                          for sid in sids for n in range(2)])
    rng = random.Random(3)
    lanes = [[] for _ in range(LANES)]
    for s, sid in enumerate(sids):  # a session's 16 appends go to 16 different lanes
        for k in range(RACE_APPENDS):
            marker = f"race:{sid}:{k}"
            call = append(key, sid, marker, {"k": k})
            call.expect = None  # 201 or 404, decided by the timing checks below
            lanes[(s % 2) * RACE_APPENDS + k].append(call)
    for lane in lanes:
        rng.shuffle(lane)
    for s, sid in enumerate(sids[:DELETED]):  # each DELETE halfway along a lane of its own
        lane = lanes[(s * 7 + 3) % LANES]
        delete = Call("DELETE", f"{SESSIONS}/{sid}", key, expect=204, tag=("delete", sid))
        lane.insert(len(lane) // 2, delete)
    calls = burst(url, lanes)
    after = {call.tag: call for call in read_all(url, [
        *(get(key, sid, tag=("session", sid)) for sid in sids),
        *(Call("GET", f"{SESSIONS}/{sid}/events?limit=1000", key, tag=("events", sid))
          for sid in sids)])}
    # The rows themselves: no event of a deleted session is left behind, unreadable.
    with closing(sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True)) as database:
        orphans = database.execute(
            "SELECT COUNT(*) FROM event WHERE session_id NOT IN (SELECT id FROM session)"
        ).fetchone()[0]
        left = database.execute(
            f"SELECT COUNT(*) FROM event WHERE session_id IN ({','.join('?' * DELETED)})",
            sids[:DELETED]).fetchone()[0]
    return {"calls": calls, "sids": sids, "setup": setup, "after": after,
            "orphans": orphans, "left": left}


def test_appends_racing_deletes_get_201_or_404_as_the_delete_ordains(delete_race):
    calls = delete_race["calls"]
    deletes = {call.tag[1]: call for call in calls if call.tag[0] == "delete"}
    assert mismatches(deletes.values()) == []
    assert len(deletes) == DELETED
    for call in calls:
        if call.tag[0] != "append":
            continue
        sid = call.tag[1]
        assert call.status in (201, 404), (call.status, call.body)
        if call.status == 201:
            call.expect = 201
            assert mismatches([call]) == []
        if sid not in deletes:
            assert call.status == 201, (call.status, call.body)
        elif call.received < deletes[sid].sent:
            assert call.status == 201, ("answered before the DELETE was sent", call.body)
        elif call.sent > deletes[sid].received:
            assert call.status == 404, ("sent after the DELETE was answered", call.body)
    statuses = Counter(call.status for call in calls if call.tag[0] == "append")
    assert statuses[404] > 0 and statuses[201] > 0, statuses  # the race did happen
    assert sum(statuses.values()) == RACED * RACE_APPENDS


def test_a_deleted_session_keeps_no_events_and_a_live_one_keeps_every_append(delete_race):
    calls, sids = delete_race["calls"], delete_race["sids"]
    assert (delete_race["orphans"], delete_race["left"]) == (0, 0)
    after = delete_race["after"]
    for sid in sids[:DELETED]:
        assert body_of(after["session", sid], 404) == NOT_FOUND
        assert body_of(after["events", sid], 404) == NOT_FOUND
    setup = defaultdict(list)
    for call in delete_race["setup"]:
        setup[call.tag[1]].append(call.body)
    for sid in sids[DELETED:]:
        session, events = body_of(after["session", sid]), body_of(after["events", sid])
        acked = sorted(setup[sid] + [call.body for call in calls if call.tag[:2] == (
            "append", sid) and call.status == 201], key=lambda event: event["sequence"])
        assert len(acked) == 2 + RACE_APPENDS
        assert session["events"] == events["data"] == acked
        assert [event["sequence"] for event in acked] == list(range(1, 3 + RACE_APPENDS))


# --- 4. no 5xx, no traceback, no "database is locked" --------------------------------------

def test_no_5xx_no_traceback_no_database_is_locked(server, mixed, two_users, delete_race):
    calls = mixed["calls"] + two_users["calls"] + delete_race["calls"]
    assert [(call.method, call.path, call.status, call.body) for call in calls
            if call.status is None or call.status >= 500] == []
    log = server.log()
    assert "Traceback" not in log, log[-3000:]
    assert "database is locked" not in log, log[-3000:]
    access = [orjson.loads(line) for line in log.splitlines() if line.startswith('{"method"')]
    assert [line for line in access if line["status"] >= 500] == []
    # The server saw each request of the bursts once, with the status its client got, and
    # both workers served them.
    logged = defaultdict(list)
    for line in access:
        logged[line["request_id"]].append(line["status"])
    assert [(call.method, call.path, call.status, logged[call.request_id]) for call in calls
            if logged[call.request_id] != [call.status]] == []
    sent = {call.request_id for call in calls}
    assert len({line["pid"] for line in access if line["request_id"] in sent}) == 2


# --- one group, made on purpose: a piece of work that fails after writing ----------------

@pytest.mark.sqlite_only
def test_a_piece_of_work_that_fails_after_writing_undoes_only_itself(app):
    """Over HTTP every refusal comes before the first write, so what undoes a failing piece
    of a group is checked here, with three pieces made to share one group: the group is run
    again with each piece in a savepoint, and the pieces around the failing one are each
    stored once, not once per run."""
    from gensessions.db import binding
    from gensessions.models import Session, db
    from gensessions.models.writes import write_path

    path = write_path(binding(app).database)
    group_commit, writers = path.group_commit, path.writers

    def write(title):
        return lambda: Session.start("user_gc", None, NOW, 3600,
                                     prd={"title": title})

    def write_then_fail():
        write("undone")()
        raise ValueError("refused after writing")

    outcomes = {}

    def caller(name, work):
        with app.app_context():  # a thread of its own: the app's database through its context
            try:
                outcomes[name] = group_commit.run(work)
            except ValueError as error:
                outcomes[name] = error
            finally:
                db.close()

    threads = []
    with writers.thread_turn():  # all queue before any can lead: one group of three
        for name, work in (("before", write("before")), ("fails", write_then_fail),
                           ("after", write("after"))):
            threads.append(threading.Thread(target=caller, args=(name, work)))
            threads[-1].start()
            deadline = time.monotonic() + 10
            while len(group_commit._pending) < len(threads) and time.monotonic() < deadline:
                time.sleep(0.001)
            assert len(group_commit._pending) == len(threads)  # queued in this order
    for thread in threads:
        thread.join(10)
    assert isinstance(outcomes["fails"], ValueError)
    assert outcomes["before"].prd == {"title": "before"}
    assert outcomes["after"].prd == {"title": "after"}
    with app.app_context(), db.connection_context():
        stored = {row.id: row.prd["title"]
                  for row in Session.select().where(Session.user_id == "user_gc")}
    assert stored == {outcomes["before"].id: "before", outcomes["after"].id: "after"}
