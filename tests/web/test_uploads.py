"""Bodies read under a cap and a deadline, forms parsed strictly from those bytes."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

from midiforge.web.uploads import BodyRefused, parse_form, read_body
from tests.web.rawhttp import multipart

CHUNK = 64 * 1024


def _request(chunks, headers=(), delay_s: float = 0.0) -> tuple[Request, list[int]]:
    """A real Starlette request whose ASGI ``receive`` hands out ``chunks`` (endless if a
    generator), sleeping ``delay_s`` before each; the list counts the chunks handed out."""
    given = [0]
    source = iter(chunks)

    async def receive():
        await asyncio.sleep(delay_s)
        chunk = next(source, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        given[0] += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    scope = {"type": "http", "method": "POST", "path": "/api/generate", "headers": list(headers)}
    return Request(scope, receive), given


def _endless():
    while True:
        yield b"a" * CHUNK


def test_a_chunked_body_is_cut_at_the_cap_having_kept_at_most_the_cap() -> None:
    cap = 10 * CHUNK
    request, given = _request(_endless())  # no Content-Length: as a chunked upload sends
    with pytest.raises(BodyRefused, match=r"^the upload is over 655360 bytes") as info:
        asyncio.run(read_body(request, cap=cap, limit=cap, deadline_s=10))
    assert info.value.status == 413
    assert given[0] == 11  # it stopped at the chunk that crossed the cap

    request, given = _request([b"x" * 10], [(b"content-length", b"999999999")])
    with pytest.raises(BodyRefused, match="the upload is 999999999 bytes") as info:
        asyncio.run(read_body(request, cap=cap, limit=cap, deadline_s=10))
    assert (info.value.status, given[0]) == (413, 0)  # refused before reading
    request, _ = _request([b"abc", b"def"])
    assert asyncio.run(read_body(request, cap=cap, limit=cap, deadline_s=10)) == b"abcdef"


def test_a_trickling_body_is_cut_at_its_deadline() -> None:
    request, given = _request(_endless(), delay_s=0.1)
    with pytest.raises(BodyRefused, match=r"took longer than 0.5 s") as info:
        asyncio.run(read_body(request, cap=10**9, limit=10**9, deadline_s=0.5))
    assert info.value.status == 408 and given[0] <= 6


def test_forms_are_parsed_strictly() -> None:
    body, kind = multipart({"model": "folk", "seed": "3"}, ("tune.mid", b"MThd..."))
    form = parse_form(kind, body, max_parts=8)
    assert form.fields == {"model": "folk", "seed": "3"}
    assert form.files == {"primer": (b"MThd...", "tune.mid")}
    bad_utf8 = body.replace(b"folk", b"f\xffk")
    with pytest.raises(BodyRefused, match="model: is not valid UTF-8 text"):
        parse_form(kind, bad_utf8, max_parts=8)
    with pytest.raises(BodyRefused, match="seed: sent twice"):
        parse_form("application/x-www-form-urlencoded", b"seed=1&seed=2", max_parts=8)
    many, many_kind = multipart({f"f{i}": "1" for i in range(9)})
    with pytest.raises(BodyRefused, match="the form has over 8 parts"):
        parse_form(many_kind, many, max_parts=8)
    with pytest.raises(BodyRefused, match="ends before its closing boundary"):
        parse_form(kind, body[: len(body) // 2], max_parts=8)
    with pytest.raises(BodyRefused, match="is not a form") as info:
        parse_form("application/json", b"{}", max_parts=8)
    assert info.value.status == 415
    encoded = parse_form("application/x-www-form-urlencoded", b"model=f%C3%A9+x&n=2", max_parts=8)
    assert encoded.fields == {"model": "fé x", "n": "2"}
    with pytest.raises(BodyRefused, match="model: is not valid UTF-8"):
        parse_form("application/x-www-form-urlencoded", b"model=%FF", max_parts=8)
