"""``runwright server ...`` commands, run as ``python -m runwright_server``."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from runwright_server.settings import DEFAULT_TOKEN_CACHE_SECONDS
from runwright_server.testing import TestServer, free_port


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runwright_server", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_token_create_prints_only_the_token_and_revoke_works(server: TestServer) -> None:
    created = cli("token", "create", "--name", "ci", "--tenant", "a", "--db", server.db_url)
    assert created.returncode == 0, created.stderr
    assert re.fullmatch(r"rw_[A-Za-z0-9_-]{43}\n", created.stdout)
    token = created.stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(server.api + "/flows", headers=headers).status_code == 200
    revoked = cli("token", "revoke", "--name", "ci", "--tenant", "a", "--db", server.db_url)
    assert revoked.returncode == 0, revoked.stderr
    # the server remembers a valid token for token_cache_seconds: revocation lands within that
    deadline = time.monotonic() + DEFAULT_TOKEN_CACHE_SECONDS + 2
    while requests.get(server.api + "/flows", headers=headers).status_code != 401:
        assert time.monotonic() < deadline, "revoked token still accepted after the cache TTL"
        time.sleep(0.1)
    again = cli("token", "revoke", "--name", "ci", "--tenant", "a", "--db", server.db_url)
    assert again.returncode == 1 and "no active token" in again.stderr


def test_token_create_makes_a_new_tenant_and_stores_only_a_hash(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    out = cli("token", "create", "--name", "x", "--tenant", "fresh", "--db", f"sqlite:///{db}")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert token.encode() not in db.read_bytes()
    listing = cli("token", "list", "--db", f"sqlite:///{db}")
    assert listing.stdout.startswith("fresh\tx\t")


def _assert_one_line_error(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_bad_db_url_is_a_one_line_error() -> None:
    _assert_one_line_error(cli("token", "create", "--name", "x", "--db", "nosuchdb://what"), "database")
    _assert_one_line_error(cli("start", "--port", str(free_port()), "--db", "nosuchdb://what"), "database")


def test_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = cli("--port", str(port), "--db", f"sqlite:///{tmp_path / 'x.db'}")  # "start" is implied
    _assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}")


def test_a_new_database_and_its_wal_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    """server.db holds tokens' hashes and results: 0600, its -wal/-shm too, a new directory 0700."""
    import os

    from runwright_server.testing import ServerProcess

    db = tmp_path / "new" / "dir" / "server.db"
    old = os.umask(0o022)  # a usual umask: what the code sets, not what the umask leaves
    try:
        created = cli("token", "create", "--name", "x", "--db", f"sqlite:///{db}")
    finally:
        os.umask(old)
    assert created.returncode == 0, created.stderr
    proc = ServerProcess(f"sqlite:///{db}").start()
    try:
        headers = {"Authorization": f"Bearer {created.stdout.strip()}"}
        assert requests.post(proc.url + "/api/v1/flows", json={"name": "f"}, headers=headers).status_code == 201
        for path in (db, db.with_name("server.db-wal"), db.with_name("server.db-shm")):
            assert path.exists() and path.stat().st_mode & 0o777 == 0o600, (path, oct(path.stat().st_mode))
        assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700
        assert (tmp_path / "new" / "dir").stat().st_mode & 0o777 == 0o700
    finally:
        proc.stop()


def test_token_revoke_reads_the_token_from_standard_input(server: TestServer) -> None:
    for argv in (["-"], []):
        token = cli("token", "create", "--name", "stdin", "--tenant", "a", "--db", server.db_url).stdout.strip()
        done = subprocess.run(
            [sys.executable, "-m", "runwright_server", "token", "revoke", *argv, "--db", server.db_url],
            input=token + "\n", capture_output=True, text=True, timeout=30, check=False,
        )
        assert done.returncode == 0 and "revoked 1 token(s)" in done.stderr, (argv, done.stderr)
        again = subprocess.run(
            [sys.executable, "-m", "runwright_server", "token", "revoke", "-", "--db", server.db_url],
            input=token + "\n", capture_output=True, text=True, timeout=30, check=False,
        )
        assert again.returncode == 1 and "no active token" in again.stderr
    empty = subprocess.run(
        [sys.executable, "-m", "runwright_server", "token", "revoke", "-", "--db", server.db_url],
        input="", capture_output=True, text=True, timeout=30, check=False,
    )
    assert empty.returncode == 2 and "no token on standard input" in empty.stderr
    shown = cli("token", "revoke", "rw_on-the-command-line", "--db", server.db_url)
    assert shown.returncode == 2 and "standard input" in shown.stderr


def _closed_within(sock: socket.socket, seconds: float, drip: bytes = b"") -> float:
    """Seconds until the server closes ``sock`` (sending ``drip`` a byte every 0.25 s)."""
    started = time.monotonic()
    sock.settimeout(0.25)
    index = 0
    while time.monotonic() - started < seconds:
        try:
            if index < len(drip):
                sock.send(drip[index : index + 1])
                index += 1
            if sock.recv(1024) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:  # reset: closed
            return time.monotonic() - started
    raise AssertionError(f"the connection was still open after {seconds} s")


def test_idle_and_slow_dripping_connections_are_closed(tmp_path: Path) -> None:
    from runwright_server.testing import ServerProcess

    proc = ServerProcess(f"sqlite:///{tmp_path / 'x.db'}", env={"RUNWRIGHT__SERVER__HEADER_TIMEOUT": "1"}).start()
    try:
        host, port = "127.0.0.1", proc.port
        with socket.create_connection((host, port)) as idle:
            assert _closed_within(idle, 5) < 2.5
        with socket.create_connection((host, port)) as slow:  # slowloris: a byte of headers at a time
            head = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100
            assert _closed_within(slow, 5, drip=head) < 2.5
        # after an answer, the next head has the same time; a keep-alive client is served as usual
        with socket.create_connection((host, port)) as alive:
            alive.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert alive.recv(4096).startswith(b"HTTP/1.1 200")
            assert _closed_within(alive, 5, drip=b"GET /api/v1/health HTTP/1.1\r\n" + b"X" * 50) < 2.5
        with requests.Session() as session:
            for _ in range(3):
                assert session.get(proc.url + "/api/v1/health").status_code == 200
                time.sleep(0.6)  # each request within the timeout on the same connection
    finally:
        proc.stop()
