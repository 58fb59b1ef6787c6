"""Raw HTTP/1.1 on a socket, multipart bodies and tiny MIDI files for ``bench/web_hostile.py``.

A plain socket client rather than httpx: the hostile set needs requests no well-behaved client
sends (lying Content-Length, chunked bodies that never end, trickled headers, foreign Host).
"""

from __future__ import annotations

import collections
import socket
import threading
import time

import symusic


class Client:
    """Raw HTTP/1.1 to the server on a socket; counts every answer by status."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.counts: collections.Counter = collections.Counter()
        self.server_errors: list[str] = []
        self.lock = threading.Lock()
        self.token = ""

    def send(
        self, group: str, head: bytes, body=(), timeout: float = 40.0
    ) -> tuple[int, bytes, int]:
        """Send ``head`` then the chunks of ``body`` (stopping once the server answers);
        returns (status or 0 when the server closed without one, answer body, bytes sent)."""
        sent, received = 0, b""
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            try:
                sock.sendall(head)
                for chunk in body:
                    sock.settimeout(0.0)
                    try:
                        received += sock.recv(65536)
                        break  # the server answered (or closed) before the body ended
                    except BlockingIOError:
                        pass
                    sock.settimeout(timeout)
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass
            sock.settimeout(max(1.0, timeout - (time.monotonic() - start)))
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                received += data
        status = int(received.split(b" ", 2)[1]) if received.startswith(b"HTTP/1.1 ") else 0
        with self.lock:
            self.counts[(group, status // 100 if status else 0)] += 1
            if status >= 500:
                self.server_errors.append(f"{group}: {status} {received[:200]!r}")
        return status, received.partition(b"\r\n\r\n")[2], sent

    def head(self, method: str, path: str, extra: dict | None = None, *, host: str | None = None,
             session: bool = True) -> bytes:  # fmt: skip
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {f'127.0.0.1:{self.port}' if host is None else host}",
        ]
        if session:
            lines += [f"Origin: http://127.0.0.1:{self.port}", f"X-CSRF-Token: {self.token}",
                      f"Cookie: midiforge_csrf_{self.port}={self.token}"]  # fmt: skip
        lines += [f"{k}: {v}" for k, v in (extra or {}).items()] + ["Connection: close", "", ""]
        return "\r\n".join(lines).encode("utf-8", "surrogateescape")

    def form(self, group: str, fields: dict, primer: tuple[str, bytes] | None = None,
             raw: bytes | None = None, **kw) -> tuple[int, bytes, int]:  # fmt: skip
        body = raw if raw is not None else multipart(fields, primer)
        extra = {"Content-Type": "multipart/form-data; boundary=BOUND",
                 "Content-Length": str(len(body))}  # fmt: skip
        return self.send(group, self.head("POST", "/api/generate", extra, **kw) + body)


def multipart(fields: dict, primer: tuple[str, bytes] | None = None) -> bytes:
    def part(name, data, filename=None):
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        head = f"--BOUND\r\nContent-Disposition: {disposition}\r\n\r\n".encode("utf-8", "replace")
        return head + data + b"\r\n"

    parts = [part(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in fields.items()]
    if primer:
        parts.append(part("primer", primer[1], primer[0]))
    return b"".join(parts) + b"--BOUND--\r\n"


def midi(notes: list[tuple[int, int, int]], tracks: int = 1, tpq: int = 480) -> bytes:
    score = symusic.Score(tpq)
    for t in range(tracks):
        track = symusic.Track(f"t{t}")
        for time_, duration, pitch in notes:
            track.notes.append(symusic.Note(time_, duration, pitch, 90))
        score.tracks.append(track)
    return score.dumps_midi()
