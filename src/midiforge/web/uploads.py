"""Request bodies read under a byte cap and a deadline, and forms parsed from those bytes only.

``Content-Length`` is a promise the client may break (or leave out, with a chunked body), so
:func:`read_body` counts the bytes as they arrive and stops at the cap, having kept at most
the cap in memory and written nothing to disk; a body that trickles in is cut off after a
deadline, however steadily it trickles. :func:`parse_form` then reads the form from those
bytes, strictly: every name and value must be UTF-8 text, no field may come twice, and the
number of parts is capped. A refusal is a :class:`BodyRefused` with the HTTP status to answer.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from midiforge.errors import MidiforgeError

MAX_NAME_SHOWN = 40  # characters of a field name quoted back in a message
FORM_TYPES = "multipart/form-data or application/x-www-form-urlencoded"


class BodyRefused(MidiforgeError):
    """The body is too large, too slow or not a readable form; ``status`` is the answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _too_large(size: str, cap: int, limit: int) -> BodyRefused:
    return BodyRefused(
        f"the upload is {size}; the limit is {limit} bytes a MIDI file (upload a shorter MIDI "
        f"file; the whole form may hold {cap} bytes)",
        413,
    )


async def read_body(request: Request, *, cap: int, limit: int, deadline_s: float) -> bytes:
    """The request body, at most ``cap`` bytes, received within ``deadline_s`` seconds.

    ``limit`` is an uploaded MIDI file's own limit, named in the 413 message. A declared
    length over the cap is refused before anything is read; the count of received bytes is
    what decides.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.strip().isdigit()):
            raise BodyRefused(f"Content-Length {declared[:20]!r} is not a byte count")
        if int(declared) > cap:
            raise _too_large(f"{int(declared)} bytes", cap, limit)
    received = bytearray()
    deadline = time.monotonic() + deadline_s
    stream = request.stream()
    try:
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                chunk = await asyncio.wait_for(anext(stream), remaining)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise BodyRefused(
                    f"the request body took longer than {deadline_s:g} s ({len(received)} bytes "
                    "arrived); send the form at once",
                    408,
                ) from None
            except ClientDisconnect:
                raise BodyRefused(
                    "the client closed the connection before the body ended"
                ) from None
            if len(received) + len(chunk) > cap:
                raise _too_large(f"over {cap} bytes", cap, limit)
            received += chunk
    finally:
        await stream.aclose()
    return bytes(received)


@dataclass
class Form:
    """A parsed form: text fields by name, and uploaded files as ``(bytes, filename)``."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    def add_field(self, name: str, value: str) -> None:
        if name in self.fields or name in self.files:
            raise BodyRefused(f"{_name(name)}: sent twice; send each field once")
        self.fields[name] = value


def _name(name: str) -> str:
    return name if len(name) <= MAX_NAME_SHOWN else name[:MAX_NAME_SHOWN] + "..."


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyRefused(f"{what}: is not valid UTF-8 text") from None


def parse_form(content_type: str, body: bytes, *, max_parts: int) -> Form:
    """The form in ``body`` (already bounded), multipart or URL-encoded, at most ``max_parts``."""
    kind, options = parse_options_header(content_type or "")
    if kind == b"multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            raise BodyRefused("the multipart form has no boundary in its Content-Type")
        return _parse_multipart(boundary, body, max_parts)
    if kind == b"application/x-www-form-urlencoded":
        return _parse_urlencoded(body, max_parts)
    shown = (content_type or "none")[:60]
    raise BodyRefused(f"Content-Type {shown!r} is not a form; send {FORM_TYPES}", 415)


def _parse_urlencoded(body: bytes, max_parts: int) -> Form:
    form = Form()
    pairs = [p for p in body.split(b"&") if p]
    if len(pairs) > max_parts:
        raise BodyRefused(f"the form has {len(pairs)} fields; at most {max_parts} are read")
    for pair in pairs:
        raw_name, _, raw_value = pair.partition(b"=")
        name = _text(unquote_to_bytes(raw_name.replace(b"+", b" ")), "a field name")
        value = unquote_to_bytes(raw_value.replace(b"+", b" "))
        form.add_field(name, _text(value, _name(name)))
    return form


class _Parts:
    """The callbacks of python-multipart's parser, collecting each part's headers and bytes."""

    def __init__(self, max_parts: int) -> None:
        self.max_parts = max_parts
        self.parts: list[tuple[dict[bytes, bytes], bytearray]] = []
        self.header_name = bytearray()
        self.header_value = bytearray()
        self.ended = False

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.part_begin,
            "on_part_data": lambda data, start, end: self.parts[-1][1].extend(data[start:end]),
            "on_header_field": lambda data, start, end: self.header_name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self.header_value.extend(data[start:end]),
            "on_header_end": self.header_end,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        if len(self.parts) >= self.max_parts:
            raise BodyRefused(f"the form has over {self.max_parts} parts; send the page's fields")
        self.parts.append(({}, bytearray()))

    def header_end(self) -> None:
        self.parts[-1][0][bytes(self.header_name).lower()] = bytes(self.header_value)
        self.header_name.clear()
        self.header_value.clear()

    def end(self) -> None:
        self.ended = True


def _parse_multipart(boundary: bytes, body: bytes, max_parts: int) -> Form:
    collected = _Parts(max_parts)
    try:
        parser = MultipartParser(boundary, collected.callbacks())
        parser.write(body)
        parser.finalize()
    except FormParserError as exc:
        raise BodyRefused(f"the multipart form could not be read ({exc})") from None
    if not collected.ended:
        raise BodyRefused("the multipart form ends before its closing boundary")
    form = Form()
    for headers, data in collected.parts:
        disposition, options = parse_options_header(headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in options:
            raise BodyRefused("a part of the form has no Content-Disposition: form-data; name=")
        name = _text(options[b"name"], "a field name")
        if b"filename" in options:
            filename = _text(options[b"filename"], f"{_name(name)}'s file name")
            if filename or data:  # an empty file input sends filename="" and no bytes
                if name in form.fields or name in form.files:
                    raise BodyRefused(f"{_name(name)}: sent twice; send each field once")
                form.files[name] = (bytes(data), filename)
            continue
        form.add_field(name, _text(bytes(data), _name(name)))
    return form
