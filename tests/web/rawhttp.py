"""Plain HTTP for the web tests: the page's session (cookie, CSRF token, Origin), forms, and
hand-written requests on a raw socket (foreign Host headers, chunked or trickling bodies)."""

from __future__ import annotations

import json
import select
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

TIMEOUT_S = 30.0


class Session:
    """What the page holds after loading: the CSRF cookie; sends it like the page does."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.port = urlsplit(url).port
        with urllib.request.urlopen(url + "/", timeout=TIMEOUT_S) as response:
            jar = SimpleCookie(response.headers["Set-Cookie"])
        self.cookie_name = f"midiforge_csrf_{self.port}"
        self.token = jar[self.cookie_name].value

    def headers(self) -> dict[str, str]:
        return {
            "Origin": self.url,
            "Cookie": f"{self.cookie_name}={self.token}",
            "X-CSRF-Token": self.token,
        }

    def request(self, method: str, path: str, body: bytes | None = None, headers=None):
        """``(status, JSON body)`` of a request with the session's headers (and ``headers``)."""
        sent = {**self.headers(), **(headers or {})}
        request = urllib.request.Request(self.url + path, data=body, headers=sent, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    def post_form(
        self,
        fields: dict[str, str],
        upload: tuple[str, bytes] | None = None,
        files: dict[str, tuple[str, bytes]] | None = None,
    ):
        """POST multipart/form-data to /api/generate like the page does."""
        body, content_type = multipart(fields, upload, files)
        return self.request("POST", "/api/generate", body, {"Content-Type": content_type})


def multipart(
    fields: dict[str, str],
    upload: tuple[str, bytes] | None = None,
    files: dict[str, tuple[str, bytes]] | None = None,
):
    """``(body, content type)`` of a multipart form with ``fields``, an optional primer
    ``(filename, bytes)`` and ``files``: file input name -> ``(filename, bytes)``."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(head.encode() + f"{value}\r\n".encode())
    uploads = {**({"primer": upload} if upload else {}), **(files or {})}
    for name, (filename, data) in uploads.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@dataclass
class Answer:
    """What came back on a raw socket: the status (0: none), the body, the bytes we sent."""

    status: int
    body: bytes
    sent: int
    seconds: float

    def json(self) -> dict:
        return json.loads(self.body)


def _parse(raw: bytes) -> tuple[int, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        return 0, b""
    return int(head.split(b" ")[1]), body


def raw_request(
    port: int, head: str, body: Iterable[bytes] = (), *, timeout: float = TIMEOUT_S
) -> Answer:
    """Send ``head`` (CRLF lines, ending in a blank line) then ``body`` chunk by chunk, stopping
    as soon as the server answers or closes; then read its answer until it closes."""
    start = time.monotonic()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1"))
        try:
            for chunk in body:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:  # the server closed the connection while we were still sending
            pass
        received = b""
        deadline = start + timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                break
            if not data:
                break
            received += data
    status, answer = _parse(received)
    return Answer(status, answer, sent, time.monotonic() - start)


def trickle(data: bytes, every_s: float) -> Iterable[bytes]:
    """``data`` one byte at a time, ``every_s`` seconds apart: a slow client."""
    for i in range(len(data)):
        yield data[i : i + 1]
        time.sleep(every_s)
