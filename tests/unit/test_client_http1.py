"""The sync client's HTTP/1.1 connection against a raw socket peer that answers canned bytes.

Each case checks what goes on the wire and how each kind of answer is framed:
Content-Length, chunked (read whole and in pieces), ended by close, interim 1xx,
HEAD and 204 without a body, keep-alive reuse, a peer that hangs up, a short body.
"""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator

import pytest

from spillway.client.http1 import BadResponse, Connection, RemoteDisconnected


class Peer:
    """A one-connection TCP peer: reads each request head (and body), sends the next answer."""

    def __init__(self, answers: list[bytes], *, close_after: bool = False) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.answers = answers
        self.close_after = close_after
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as reader:
            for answer in self.answers:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                self.requests.append(head + reader.read(length))
                conn.sendall(answer)
            if self.close_after:
                conn.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.thread.join(timeout=5)
        self.listener.close()


@pytest.fixture
def peer_factory() -> Iterator[list[Peer | Connection]]:
    opened: list[Peer | Connection] = []
    yield opened
    for thing in opened:
        thing.close()


def connect(
    opened: list[Peer | Connection], answers: list[bytes], **kw: bool
) -> tuple[Peer, Connection]:
    peer = Peer(answers, **kw)
    conn = Connection("127.0.0.1", peer.port, https=False, timeout=5.0)
    opened.extend([conn, peer])  # closed in this order: the client, then the peer
    return peer, conn


def test_a_json_post_is_framed_by_content_length_and_the_connection_is_kept(
    peer_factory: list[Peer | Connection],
) -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    peer, conn = connect(peer_factory, [ok, ok])
    conn.request("POST", "/api/v1/jobs", b'{"a": 1}', {"Authorization": "Bearer t"})
    resp = conn.getresponse("POST")
    assert (resp.status, resp.reason, resp.read(), resp.will_close) == (200, "OK", b"{}", False)
    assert resp.getheader("content-type") == "application/json"
    sock = conn.sock
    conn.request("GET", "/api/v1/jobs?limit=5")
    assert conn.getresponse().read() == b"{}"
    assert conn.sock is sock  # one connection for both
    first, second = peer.requests
    assert first.startswith(b"POST /api/v1/jobs HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{peer.port}\r\n".encode() in first
    assert b"Content-Length: 8\r\n" in first and b"Authorization: Bearer t\r\n" in first
    assert first.endswith(b'\r\n\r\n{"a": 1}')
    assert second.startswith(b"GET /api/v1/jobs?limit=5 HTTP/1.1\r\n")
    assert b"Content-Length" not in second


def test_a_file_body_is_streamed_with_its_given_length(
    peer_factory: list[Peer | Connection],
) -> None:
    peer, conn = connect(peer_factory, [b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"])
    blob = bytes(range(256)) * 5000
    conn.request("PUT", "/blob", io.BytesIO(blob), {"Content-Length": str(len(blob))})
    resp = conn.getresponse("PUT")
    assert (resp.status, resp.read()) == (201, b"")
    assert peer.requests[0].endswith(b"\r\n\r\n" + blob)
    with pytest.raises(ValueError, match="Content-Length"):
        conn.request("PUT", "/blob", io.BytesIO(blob))


def test_a_chunked_answer_is_read_whole_or_in_pieces(peer_factory: list[Peer | Connection]) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    _, conn = connect(peer_factory, [chunked, chunked])
    conn.request("GET", "/a")
    assert conn.getresponse().read() == b"hello, world"
    conn.request("GET", "/b")
    resp = conn.getresponse()
    pieces = []
    while piece := resp.read(3):
        pieces.append(piece)
    assert b"".join(pieces) == b"hello, world" and max(map(len, pieces)) <= 3
    assert not resp.will_close


def test_an_answer_without_length_ends_at_close(peer_factory: list[Peer | Connection]) -> None:
    _, conn = connect(peer_factory, [b"HTTP/1.0 200 OK\r\n\r\nall of it"], close_after=True)
    conn.request("GET", "/")
    resp = conn.getresponse()
    assert resp.will_close
    assert resp.read() == b"all of it"


def test_interim_answers_are_skipped_and_head_and_204_have_no_body(
    peer_factory: list[Peer | Connection],
) -> None:
    answers = [
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
    ]
    _, conn = connect(peer_factory, answers)
    conn.request("POST", "/x", b"")
    assert conn.getresponse("POST").read() == b"abc"
    conn.request("HEAD", "/x")
    assert conn.getresponse("HEAD").read() == b""
    conn.request("DELETE", "/x")
    assert conn.getresponse("DELETE").read() == b""
    conn.request("GET", "/x")
    resp = conn.getresponse()
    assert (resp.status, resp.will_close, resp.read()) == (404, True, b"x")


def test_a_peer_that_hangs_up_or_stops_short_is_told_apart(
    peer_factory: list[Peer | Connection],
) -> None:
    _, conn = connect(peer_factory, [], close_after=True)
    conn.request("GET", "/")
    with pytest.raises(RemoteDisconnected):
        conn.getresponse()
    conn.close()
    short = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    _, conn = connect(peer_factory, [short], close_after=True)
    conn.request("GET", "/")
    with pytest.raises(BadResponse, match="short"):
        conn.getresponse().read()
    conn.close()
    _, conn = connect(peer_factory, [b"SSH-2.0-OpenSSH\r\n"], close_after=True)
    conn.request("GET", "/")
    with pytest.raises(BadResponse, match="status line"):
        conn.getresponse()
    conn.close()


def test_a_silent_peer_times_out() -> None:
    # A listener that never accepts: the kernel completes the connection, nobody answers.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        conn = Connection("127.0.0.1", listener.getsockname()[1], https=False, timeout=0.2)
        conn.request("GET", "/")
        with pytest.raises(TimeoutError):
            conn.getresponse()
        conn.close()
