"""Slow and oversized clients against a real uvicorn + httptools server (tollway.serving.timeouts).

The server runs in a subprocess (tests/serving/slow_app.py) with header_timeout
0.5 s, body_timeout 0.5 s and timeout_keep_alive 1 s; the clients are raw
sockets.  Margins are generous: "closed" means within 5 s, "not early" means
after at least 0.3 s.
"""

from __future__ import annotations

import json
import pickle
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tollway.serving import timeouts

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 0.5  # header_timeout and body_timeout of the test server
KEEP_ALIVE = 1  # its timeout_keep_alive
CLOSED_WITHIN = 5.0
NOT_BEFORE = 0.3
# uvicorn re-raises the SIGTERM it handled once its graceful shutdown is done.
EXITED = (0, -signal.SIGTERM)
STREAM_BODY = b"".join(b"chunk %d\n" % i for i in range(12))


class Client(socket.socket):
    """A loopback client socket that keeps what it read past one response."""

    pending = b""


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def connect(self) -> Client:
        sock = Client(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(CLOSED_WITHIN)
        sock.connect(("127.0.0.1", self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])


def start_server(log: Path, *args: str) -> Server:
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.serving.slow_app", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    assert process.stdout is not None
    port = int(process.stdout.readline())
    process.stdout.close()
    server = Server(process, port, log)
    deadline = time.monotonic() + 15
    while True:  # until the app has started (lifespan done, workers up)
        try:
            with server.connect() as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                if read_all(sock).data.startswith(b"HTTP/1.1 200"):
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            process.wait()
            raise RuntimeError(f"test server did not start: {log.read_text()}")
        time.sleep(0.05)


def stop_server(server: Server) -> None:
    server.process.send_signal(signal.SIGTERM)
    try:
        assert server.process.wait(timeout=10) in EXITED
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


@pytest.fixture(name="server", scope="module")
def fixture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("server") / "stderr.log"
    server = start_server(
        log, "--header-timeout", str(TIMEOUT), "--body-timeout", str(TIMEOUT), "--keep-alive", str(KEEP_ALIVE)
    )
    yield server
    stop_server(server)
    text = log.read_text()
    assert "Traceback" not in text, text
    assert "Exception in ASGI application" not in text, text


@dataclass
class Read:
    data: bytes
    elapsed: float
    closed: bool  # by the server (end of file or reset), as opposed to our read timing out
    reset: bool = False


def read_all(sock: Client, within: float = CLOSED_WITHIN) -> Read:
    """Everything the server sends until it closes the connection (or `within` seconds pass)."""
    start = time.monotonic()
    chunks: list[bytes] = [sock.pending]
    sock.pending = b""
    while True:
        left = within - (time.monotonic() - start)
        if left <= 0:
            return Read(b"".join(chunks), time.monotonic() - start, closed=False)
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return Read(b"".join(chunks), time.monotonic() - start, closed=False)
        except ConnectionResetError:
            return Read(b"".join(chunks), time.monotonic() - start, closed=True, reset=True)
        if not chunk:
            return Read(b"".join(chunks), time.monotonic() - start, closed=True)
        chunks.append(chunk)


def read_response(sock: Client) -> tuple[int, dict[str, str], bytes]:
    """One response (content-length or chunked), leaving the connection open."""
    sock.settimeout(CLOSED_WITHIN)
    buffer, sock.pending = sock.pending, b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response head: {buffer!r}"
        buffer += chunk
    head, rest = buffer.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}

    def more() -> bytes:
        chunk = sock.recv(65536)
        assert chunk, "closed inside a response body"
        return chunk

    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += more()
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line, 16)
            while len(rest) < size + 2:
                rest += more()
            body, rest = body + rest[:size], rest[size + 2 :]
            if size == 0:
                break
        sock.pending = rest
    else:
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            rest += more()
        body, sock.pending = rest[:length], rest[length:]
    return status, headers, body


def request(path: str, method: str = "GET", body: bytes = b"", length: int | None = None) -> bytes:
    """A request head (with `Content-Length: length`, by default the body's for a POST) and body."""
    if length is None and method == "POST":
        length = len(body)
    header = "" if length is None else f"Content-Length: {length}\r\n"
    return f"{method} {path} HTTP/1.1\r\nHost: t\r\n{header}\r\n".encode() + body


def status_of(data: bytes) -> int:
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data.split()[1])


# --- header_timeout ---------------------------------------------------------------------------


def test_silent_connection_is_closed_after_header_timeout(server: Server) -> None:
    with server.connect() as sock:
        result = read_all(sock)
    assert result.closed
    assert result.elapsed >= NOT_BEFORE
    assert result.data == b""  # nothing was asked: nothing is answered


def test_trickled_head_gets_408_and_is_closed(server: Server) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 1000
    with server.connect() as sock:
        start = time.monotonic()
        sent = 0
        try:
            for byte in head:  # a byte every 0.1 s: it would take 100 s
                sock.sendall(bytes([byte]))
                sent += 1
                sock.settimeout(0.1)
                try:
                    if sock.recv(1, socket.MSG_PEEK):
                        break
                except TimeoutError:
                    pass
        except OSError:
            pass
        result = read_all(sock)
        elapsed = time.monotonic() - start
    assert result.closed
    assert NOT_BEFORE <= elapsed <= CLOSED_WITHIN
    assert sent < len(head)
    assert status_of(result.data) == 408
    assert b"connection: close" in result.data.lower()


def test_a_later_request_gets_header_timeout_from_its_first_byte(server: Server) -> None:
    """On a kept-alive connection the clock starts at the new head's first byte, not earlier."""
    with server.connect() as sock:
        sock.sendall(request("/health"))
        assert read_response(sock)[0] == 200
        time.sleep(0.3)  # the connection's first deadline (open + 0.5 s) passes during the next head
        start = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")
        result = read_all(sock)
        elapsed = time.monotonic() - start
    assert result.closed
    assert NOT_BEFORE <= elapsed <= CLOSED_WITHIN  # load can only make it later
    assert status_of(result.data) == 408


def test_keep_alive_requests_and_pipelining_still_work(server: Server) -> None:
    with server.connect() as sock:
        for i in range(3):
            sock.sendall(request("/health"))
            assert read_response(sock)[0] == 200
            sock.sendall(request("/echo", "POST", b"x" * (i + 1)))
            assert read_response(sock)[2] == b'{"bytes":%d}' % (i + 1)
            time.sleep(0.1)  # idle between requests is timeout_keep_alive's business, not header_timeout's
        sock.sendall(request("/health") + request("/echo", "POST", b"abc") + request("/health"))
        assert [read_response(sock)[0] for _ in range(3)] == [200, 200, 200]


def test_a_complete_head_takes_the_header_clock_off(server: Server) -> None:
    """The head arrives in pieces but within header_timeout; the request then waits longer than that."""
    with server.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHo")
        time.sleep(0.1)
        sock.sendall(b"st: t\r\nContent-Length: 3\r\n\r\n")
        time.sleep(0.2)
        sock.sendall(b"a")
        time.sleep(0.2)
        sock.sendall(b"bc")
        assert read_response(sock)[2] == b'{"bytes":3}'


def test_idle_keep_alive_is_closed_by_timeout_keep_alive(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(request("/health"))
        assert read_response(sock)[0] == 200
        result = read_all(sock)
    assert result.closed and result.data == b""
    assert result.elapsed >= KEEP_ALIVE - 0.3


def test_blank_lines_between_requests_do_not_keep_a_connection_open(server: Server) -> None:
    # Stock uvicorn cancels its keep-alive timer on any byte and never re-arms it.
    with server.connect() as sock:
        sock.sendall(request("/health"))
        assert read_response(sock)[0] == 200
        for _ in range(3):
            time.sleep(0.2)
            sock.sendall(b"\r\n")
        result = read_all(sock)
    assert result.closed and result.data == b""


def test_unread_rest_of_a_body_does_not_keep_a_connection_open(server: Server) -> None:
    """/health never reads its body: the rest of it, trickled, must not hold the connection."""
    with server.connect() as sock:
        sock.sendall(request("/health", body=b"x", length=100_000))
        assert read_response(sock)[0] == 200
        start = time.monotonic()
        cut = False
        while not cut and time.monotonic() - start < CLOSED_WITHIN:
            try:
                sock.sendall(b"x")
            except OSError:
                cut = True
            time.sleep(0.1)
        assert cut


# --- body_timeout -------------------------------------------------------------------------------


@pytest.mark.parametrize("sent", [b"", b'{"model'], ids=["before-first-byte", "mid-body"])
def test_stalled_body_gets_408_json_and_is_closed(server: Server, sent: bytes) -> None:
    with server.connect() as sock:
        sock.sendall(request("/echo", "POST", sent, length=100))
        result = read_all(sock)
    assert result.closed
    assert NOT_BEFORE <= result.elapsed <= CLOSED_WITHIN
    head, body = result.data.split(b"\r\n\r\n", 1)
    assert status_of(head) == 408
    assert b"connection: close" in head.lower()
    assert b"content-type: application/json" in head.lower()
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "request_timeout"
    assert error["param"] is None
    assert "0.5 seconds" in error["message"]


def test_slow_but_steady_body_is_accepted(server: Server) -> None:
    """body_timeout bounds each stall, not the whole body: 8 bytes 0.1 s apart (0.8 s in all) pass."""
    with server.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\n")
        for _ in range(8):
            time.sleep(0.1)
            sock.sendall(b"x")
        assert read_response(sock)[2] == b'{"bytes":8}'


# --- streams ------------------------------------------------------------------------------------


def test_streams_longer_than_every_timeout_are_delivered_whole(server: Server) -> None:
    def plain() -> None:
        with server.connect() as sock:
            start = time.monotonic()
            sock.sendall(request("/stream"))
            status, _, body = read_response(sock)
            assert (status, body) == (200, STREAM_BODY)
            assert time.monotonic() - start >= 2.5
            sock.sendall(request("/health"))  # and the connection is still good
            assert read_response(sock)[0] == 200

    def pipelined_partial_head() -> None:
        # The next request's head stalls while the stream runs: the stream is not cut, the stalled
        # request is never served, and the connection closes once the stream ends.
        with server.connect() as sock:
            sock.sendall(request("/stream") + b"GET /health HTTP/1.1\r\nHo")
            status, _, body = read_response(sock)
            assert (status, body) == (200, STREAM_BODY)
            rest = read_all(sock)
            assert rest.closed and rest.data == b""

    failures: list[BaseException] = []

    def run(target: object) -> None:
        try:
            target()  # type: ignore[operator]
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(f,)) for f in (plain, pipelined_partial_head)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not failures, failures


# --- oversized heads -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        pytest.param(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414, id="20KB-url"),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(300)) + b"\r\n",
            431,
            id="300-header-lines",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431, id="70KB-header"
        ),
    ],
)
def test_oversized_head_is_refused_with_status(server: Server, payload: bytes, status: int) -> None:
    with server.connect() as sock:
        sock.sendall(payload)
        result = read_all(sock)
    assert result.closed
    assert status_of(result.data) == status
    head, _, body = result.data.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert re.search(rb"\r\nx-request-id: req_[0-9a-f]{24}\r\n", head)
    code = {414: "uri_too_long", 431: "request_headers_too_large"}[status]
    assert json.loads(body)["error"] == {
        "message": timeouts._REASONS[status][0],
        "type": "invalid_request_error",
        "param": None,
        "code": code,
    }


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n", id="space-in-name"),
        pytest.param(b"NOT HTTP AT ALL\r\n\r\n", id="garbage"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", id="negative-length"),
    ],
)
def test_malformed_request_gets_a_json_400_with_a_request_id(server: Server, payload: bytes) -> None:
    with server.connect() as sock:
        sock.sendall(payload)
        result = read_all(sock)
    assert result.closed
    assert status_of(result.data) == 400
    head, _, body = result.data.partition(b"\r\n\r\n")
    assert re.search(rb"\r\nx-request-id: req_[0-9a-f]{24}\r\n", head)
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body)["error"]["code"] == "invalid_http_request"


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n", 431, id="1MB-header"
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 1_000_000, 431, id="1MB-header-unfinished"
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(10_000)) + b"\r\n",
            431,
            id="10000-header-lines",
        ),
        pytest.param(b"GET /" + b"a" * 1_000_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414, id="1MB-url"),
    ],
)
def test_head_floods_are_refused(server: Server, payload: bytes, status: int) -> None:
    """The server refuses before the end; its close may reach us as a reset, before its answer."""
    with server.connect() as sock:
        try:
            sock.sendall(payload)
        except OSError:
            pass
        result = read_all(sock)
    assert result.closed
    if result.data:
        assert status_of(result.data) == status
    else:
        assert result.reset


def test_unterminated_head_flood_is_not_buffered(server: Server) -> None:
    before = server.rss_kb()
    with server.connect() as sock:
        sent = 0
        try:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: ")
            for _ in range(50):  # 50 MB, which stock uvicorn + httptools would all keep
                sock.sendall(b"a" * 1_000_000)
                sent += 1
        except OSError:
            pass
    assert sent < 50
    assert server.rss_kb() - before < 10_000


# --- workers, pickling, graceful shutdown ---------------------------------------------------------


def test_protocol_classes_pickle_by_name_into_a_fresh_interpreter() -> None:
    cls = timeouts.protocol_class(2.5, max_url_bytes=1000)
    assert timeouts.protocol_class(2.5, max_url_bytes=1000) is cls
    assert pickle.loads(pickle.dumps(cls)) is cls
    code = (
        "import pickle, sys; cls = pickle.loads(bytes.fromhex(sys.argv[1])); "
        "print(cls.header_timeout, cls.max_url_bytes, cls.max_head_bytes)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, pickle.dumps(cls).hex()], capture_output=True, check=True, text=True
    ).stdout
    assert out.split() == ["2.5", "1000", str(timeouts.MAX_HEAD_BYTES)]
    assert getattr(timeouts, cls.__name__) is cls  # also reachable as an import string
    with pytest.raises(AttributeError):
        _ = timeouts.HeaderTimeoutProtocol_nonsense
    with pytest.raises(ValueError):
        timeouts.protocol_class(0)


def test_workers_and_graceful_shutdown(tmp_path: Path) -> None:
    """With --workers the spawned workers use the bound timeouts; SIGTERM lets a stream finish."""
    server = start_server(
        tmp_path / "stderr.log", "--workers", "2", "--header-timeout", "0.5", "--body-timeout", "0.5"
    )
    try:
        with server.connect() as silent, server.connect() as slow_body, server.connect() as streaming:
            streaming.sendall(request("/stream?chunks=6"))  # 1.5 s
            slow_body.sendall(request("/echo", "POST", length=10))
            quiet = read_all(silent)
            assert quiet.closed and quiet.data == b""
            assert quiet.elapsed <= CLOSED_WITHIN
            assert status_of(read_all(slow_body).data) == 408
            time.sleep(0.3)
            server.process.send_signal(signal.SIGTERM)
            status, _, body = read_response(streaming)
            assert (status, body) == (200, STREAM_BODY[: STREAM_BODY.index(b"chunk 6")])
        assert server.process.wait(timeout=10) in EXITED
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
    text = server.log.read_text()
    assert "Traceback" not in text, text
