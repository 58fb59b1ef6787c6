"""The guard in front of every route: Host, Origin (or Referer) and the CSRF token."""

from __future__ import annotations

from midiforge.web.guard import RequestGuard, Tokens, cookie_name

PORT = 7860
OWN = f"http://127.0.0.1:{PORT}"


def _guard() -> RequestGuard:
    return RequestGuard(lambda scope, receive, send: None, port=PORT, tokens=Tokens())


def _with_token(guard: RequestGuard, token: str | None = None, **headers: str) -> dict:
    token = token or guard.tokens.issue()
    return {"host": f"127.0.0.1:{PORT}", "origin": OWN, "x-csrf-token": token,
            "cookie": f"other=1; {cookie_name(PORT)}={token}", **headers}  # fmt: skip


def test_only_this_servers_host_names_are_served() -> None:
    guard = _guard()
    for host in (f"127.0.0.1:{PORT}", f"localhost:{PORT}", f"[::1]:{PORT}", f"LOCALHOST:{PORT}"):
        assert guard.problem("GET", {"host": host}) is None, host
    for host in ("rebound.example:7860", "127.0.0.1:7861", "127.0.0.1", "", "127.0.0.1:7860\x00"):
        problem = guard.problem("GET", {"host": host})
        assert problem is not None and problem.startswith("refused: Host"), host
    assert "is not this server" in guard.problem("POST", {"host": "evil:7860"})


def test_changes_need_this_origin_and_the_sessions_token() -> None:
    guard = _guard()
    assert guard.problem("POST", _with_token(guard)) is None
    assert guard.problem("DELETE", _with_token(guard)) is None
    referer_only = _with_token(guard, referer=f"{OWN}/page")
    del referer_only["origin"]
    assert guard.problem("POST", referer_only) is None
    cases = {
        "another site (Origin 'http://evil.example')": {"origin": "http://evil.example"},
        "another site (Origin 'http://127.0.0.1:8000')": {"origin": "http://127.0.0.1:8000"},
        "another site (Origin 'null')": {"origin": "null"},
        "another site (Referer 'http://127.0.0.1:78601/')": {
            "origin": None, "referer": "http://127.0.0.1:78601/"},
        "has no Origin or Referer header": {"origin": None},
        "CSRF token is missing": {"x-csrf-token": None},
        "does not match": {"x-csrf-token": "abc.def"},
        "not issued by this server": {},  # a token another server signed
    }  # fmt: skip
    for reason, change in cases.items():
        headers = _with_token(guard, Tokens().issue() if not change else None)
        headers.update(change)
        headers = {k: v for k, v in headers.items() if v is not None}
        problem = guard.problem("POST", headers)
        assert problem is not None and reason in problem, (reason, problem)
    odd = _with_token(guard, **{"x-csrf-token": "é\x00", "cookie": "junk;;;=\x01"})
    assert "CSRF token is missing" in guard.problem("PUT", odd)


def test_tokens_are_signed_by_their_server() -> None:
    tokens = Tokens()
    token = tokens.issue()
    assert tokens.valid(token) and not Tokens().valid(token)
    for bad in (None, "", "abc", "a.b.c", token + "x", "é." + token.split(".")[1]):
        assert not tokens.valid(bad), bad
