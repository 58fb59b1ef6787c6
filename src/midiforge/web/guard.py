"""The page trusts only itself: Host, Origin and a CSRF token, checked before any route runs.

A server on 127.0.0.1 is still reachable from every web page the user opens: a foreign page
can post a form to it (cross-site request forgery), and a foreign host name that resolves to
127.0.0.1 (DNS rebinding) can even read its answers. :class:`RequestGuard` therefore refuses,
with ``403 {"error": ...}`` naming the reason:

* any request whose ``Host`` is not this server (``127.0.0.1``, ``localhost`` or ``[::1]``
  with the server's port): that is what a rebound name sends;
* any state-changing request (not GET/HEAD/OPTIONS) whose ``Origin`` -- or, when a browser
  sends none, ``Referer`` -- is not the server's own origin;
* any state-changing request without the session's CSRF token in the :data:`TOKEN_HEADER`
  header equal to the :data:`cookie <cookie_name>` the page set. A form on another site
  cannot set a header, and the cookie is ``SameSite=Strict``.

Tokens are ``nonce.signature`` with an HMAC under a secret drawn when the server starts, so
the server keeps no session table and a token from another server (or another run of this
one) is refused; the page then asks the user to reload.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")  # the names this server answers to
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_HEADER = "x-csrf-token"
NONCE_BYTES = 16
SIGNATURE_CHARS = 32  # hex characters of the HMAC-SHA256 kept in a token
MAX_SHOWN = 80  # characters of a refused header quoted back in a message


def cookie_name(port: int) -> str:
    """The CSRF cookie's name; cookies ignore ports, so each port gets its own."""
    return f"midiforge_csrf_{port}"


def _shown(value: str) -> str:
    return repr(value if len(value) <= MAX_SHOWN else value[:MAX_SHOWN] + "...")


class Tokens:
    """Issues and checks CSRF tokens signed with a secret of this server process."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def _sign(self, nonce: str) -> str:
        digest = hmac.new(self._secret, nonce.encode("ascii"), hashlib.sha256).hexdigest()
        return digest[:SIGNATURE_CHARS]

    def issue(self) -> str:
        nonce = secrets.token_urlsafe(NONCE_BYTES)
        return f"{nonce}.{self._sign(nonce)}"

    def valid(self, token: str | None) -> bool:
        if not token or token.count(".") != 1 or not token.isascii():
            return False
        nonce, signature = token.split(".")
        return hmac.compare_digest(signature, self._sign(nonce))


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers, lower-cased; a repeated header keeps its first value."""
    found: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers") or []:
        name = raw_name.decode("latin-1").lower()
        found.setdefault(name, raw_value.decode("latin-1"))
    return found


def request_cookie(headers: dict[str, str], name: str) -> str | None:
    """The value of cookie ``name`` in the ``Cookie`` header, if any (a bad header: none)."""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # http.cookies raises CookieError on junk; treat it as no cookie
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


class RequestGuard:
    """ASGI middleware: refuse foreign hosts, foreign origins and requests without the token.

    Parameters
    ----------
    app
        The application behind the guard.
    port
        The port the server listens on; ``Host`` must name it (or omit it for port 80).
    tokens
        Checks the CSRF token of state-changing requests.
    """

    def __init__(self, app: ASGIApp, *, port: int, tokens: Tokens) -> None:
        self.app = app
        self.port = port
        self.tokens = tokens
        self.hosts = {f"{name}:{port}" for name in LOCAL_NAMES}
        if port == 80:
            self.hosts |= set(LOCAL_NAMES)
        self.origin = f"http://127.0.0.1:{port}"
        self.cookie = cookie_name(port)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        problem = self.problem(scope["method"], headers)
        if problem is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": problem}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),  # the request's body, if any, is not read
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def problem(self, method: str, headers: dict[str, str]) -> str | None:
        """Why the request is refused, or None when it may go on."""
        host = headers.get("host", "").strip().lower()
        if host not in self.hosts:
            return (
                f"refused: Host {_shown(host)} is not this server; open {self.origin}/ (a "
                "foreign Host is what a DNS-rebinding page sends)"
            )
        if method.upper() in SAFE_METHODS:
            return None
        own = f"http://{host}"
        origin = headers.get("origin")
        if origin is not None:
            if origin.lower() != own:
                return (
                    f"refused: this {method} came from another site (Origin {_shown(origin)}); "
                    f"only the page at {own}/ may change anything"
                )
        else:
            referer = headers.get("referer")
            if referer is None:
                return (
                    f"refused: this {method} has no Origin or Referer header; state-changing "
                    f"requests must come from the page at {own}/"
                )
            if not (referer.lower() + "/").startswith(own + "/"):
                return (
                    f"refused: this {method} came from another site (Referer "
                    f"{_shown(referer)}); only the page at {own}/ may change anything"
                )
        sent = headers.get(TOKEN_HEADER)
        cookie = request_cookie(headers, self.cookie)
        if not sent or cookie is None or not hmac.compare_digest(sent.encode(), cookie.encode()):
            return (
                f"refused: the CSRF token is missing or does not match (the {TOKEN_HEADER} "
                f"header must equal the {self.cookie} cookie); reload the page at {own}/"
            )
        if not self.tokens.valid(sent):
            return (
                "refused: the CSRF token was not issued by this server (it was restarted?); "
                f"reload the page at {own}/"
            )
        return None
