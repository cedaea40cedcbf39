"""Connections are spread over gunicorn's workers (gunicorn.conf.py: reuse_port).

On one shared listening socket, a burst of keep-alive connections could all land on the
worker that happened to accept first, leaving the other core idle for the connections'
whole life. Each worker now has its own SO_REUSEPORT socket and the kernel spreads
connections between them; a unix socket (which cannot be shared that way) keeps one socket.
"""
import http.client
import json
import os
import pathlib
import re
import socket
import subprocess
import sys

from helpers import ROOT, wait_until
from servers import UNSET, start_gunicorn

CONNECTIONS = 16


def listening_sockets(port):
    """How many TCP sockets listen on 127.0.0.1:`port` (from /proc/net/tcp; state 0A)."""
    count = 0
    for line in pathlib.Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            count += 1
    return count


def access_pids(log):
    pids = set()
    for line in log.splitlines():
        if line.startswith("{"):
            pids.add(json.loads(line)["pid"])
    return pids


def test_each_worker_listens_on_its_own_socket(tmp_path):
    with start_gunicorn(tmp_path, workers=2) as server:
        port = int(server.url.rsplit(":", 1)[1])
        assert wait_until(lambda: listening_sockets(port) == 2, 10, "two listening sockets")


def test_a_burst_of_keep_alive_connections_is_served_by_both_workers(tmp_path):
    with start_gunicorn(tmp_path, workers=2) as server:
        key = server.create_key("user_balance")
        host, port = server.url.removeprefix("http://").split(":")
        start = server.log_size()
        # All connections open before any request, as a load generator or a pool does.
        connections = [http.client.HTTPConnection(host, int(port), timeout=10)
                       for _ in range(CONNECTIONS)]
        for connection in connections:
            connection.connect()
        request_ids = []
        for _ in range(3):
            for connection in connections:
                connection.request("GET", "/v1/products/generation/sessions",
                                   headers={"Authorization": f"Bearer {key}"})
                response = connection.getresponse()
                response.read()
                assert response.status == 200
                request_ids.append(response.getheader("X-Request-Id"))
        for connection in connections:
            connection.close()
        # Each of the 16 connections picks a worker at random: all on one has odds 2**-15.
        pids = wait_until(lambda: len(access_pids(server.log(start))) == 2, 10,
                          "access lines from both workers")
        assert pids
        # Ids the server made: uuid4().hex's form, and no two alike across both workers.
        assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in request_ids), request_ids
        assert len(set(request_ids)) == len(request_ids) == 3 * CONNECTIONS


def test_a_second_server_on_the_same_address_refuses_to_start(tmp_path):
    """SO_REUSEPORT would let it bind and take half the first one's connections."""
    (tmp_path / "first").mkdir()
    with start_gunicorn(tmp_path / "first", workers=2) as server:
        env = {name: value for name, value in os.environ.items() if name not in UNSET}
        env.update(DATABASE_URL=str(tmp_path / "second.db"), INSTANCE_PATH=str(tmp_path),
                   RATE_LIMIT="off", PURGE_SCHEDULE="off")
        second = subprocess.run(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind",
             server.url.removeprefix("http://"), "wsgi:app"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        assert second.returncode != 0
        assert "Connection in use" in second.stderr
        assert "Booting worker" not in second.stderr
        port = int(server.url.rsplit(":", 1)[1])
        assert listening_sockets(port) == 2  # the first server's two, nothing more
        assert server.healthy()


def test_a_unix_socket_bind_still_serves(tmp_path):
    path = tmp_path / "gensessions.sock"
    env = {name: value for name, value in os.environ.items() if name not in UNSET}
    env.update(DATABASE_URL=str(tmp_path / "server.db"), INSTANCE_PATH=str(tmp_path),
               RATE_LIMIT="off", PURGE_SCHEDULE="off")
    with open(tmp_path / "server.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind",
             f"unix:{path}", "--workers", "2", "wsgi:app"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def status():
            try:
                with socket.socket(socket.AF_UNIX) as client:
                    client.settimeout(2)
                    client.connect(str(path))
                    client.sendall(b"GET /healthz HTTP/1.1\r\nHost: local\r\n"
                                   b"Connection: close\r\n\r\n")
                    return client.recv(64).split(b"\r\n")[0]
            except OSError:
                return None
        assert wait_until(status, 20, "gunicorn on a unix socket") == b"HTTP/1.1 200 OK"
    finally:
        process.terminate()
        process.wait(30)
    assert process.returncode == 0, (tmp_path / "server.log").read_text()[-2000:]
    assert "Traceback" not in (tmp_path / "server.log").read_text()
