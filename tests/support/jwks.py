"""Real signing keys, hand-built tokens and a loopback JWKS server for token-verification tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class SigningKey:
    """A private key with its key id and default algorithm, as an auth server would hold it."""

    kid: str
    alg: str
    private_key: PrivateKey

    def public_jwk(self, *, include_alg: bool = False, **extra: Any) -> dict[str, Any]:
        """The public half as a JWKS entry (no `alg` unless asked, like many servers publish)."""
        public_key = self.private_key.public_key()
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            jwk = OKPAlgorithm.to_jwk(public_key, as_dict=True)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(public_key, as_dict=True)
        else:
            jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
        jwk["kid"] = self.kid
        if include_alg:
            jwk["alg"] = self.alg
        jwk.update(extra)
        return jwk

    def public_pem(self) -> bytes:
        """The public key as SubjectPublicKeyInfo PEM: the classic HMAC-confusion secret."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def ed25519_key(kid: str = "ed25519-1") -> SigningKey:
    """A fresh Ed25519 key (Better Auth's default)."""
    return SigningKey(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())


def es256_key(kid: str = "es256-1") -> SigningKey:
    """A fresh P-256 key."""
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def rs256_key(kid: str = "rs256-1") -> SigningKey:
    """A fresh 2048-bit RSA key."""
    return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def sign(
    claims: dict[str, Any],
    key: SigningKey,
    alg: str | None = None,
    *,
    kid: str | None = None,
    omit_kid: bool = False,
    headers: dict[str, Any] | None = None,
) -> str:
    """A token signed by `key` with `alg` (default: the key's); its header names the key's kid."""
    header: dict[str, Any] = {} if omit_kid else {"kid": kid or key.kid}
    header.update(headers or {})
    return jwt.encode(claims, key.private_key, algorithm=alg or key.alg, headers=header)


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWS uses it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(value: dict[str, Any] | str) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return b64url(text.encode())


def unsigned_token(claims: dict[str, Any], *, alg: object = "none", **header: Any) -> str:
    """An `alg: none` token with an empty signature, built by hand because PyJWT will not."""
    return f"{_segment({'alg': alg, 'typ': 'JWT', **header})}.{_segment(claims)}."


def raw_hs256_token(claims: dict[str, Any] | str, secret: bytes, **header: Any) -> str:
    """An HS256 token with any bytes as the secret (PyJWT refuses PEM keys as HMAC secrets).

    `claims` may be a string, which becomes the payload verbatim (for malformed payloads).
    """
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT', **header})}.{_segment(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


ServerMode = Literal["up", "error", "garbage", "drop", "slow"]


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 served from a thread; tests change its keys and health.

    Modes: "up" serves the document; "error" answers 500; "garbage" answers 200 with non-JSON;
    "drop" closes the connection without answering; "slow" waits `slow_seconds` before answering.
    `latency_seconds` delays every answer. `request_count` counts requests in every mode.
    """

    def __init__(self, keys: Iterable[dict[str, Any]] = (), *, slow_seconds: float = 10.0) -> None:
        self.slow_seconds = slow_seconds
        self.latency_seconds = 0.0
        self.mode: ServerMode = "up"
        self._lock = threading.Lock()
        self._document: object = {"keys": list(keys)}
        self._request_count = 0
        # Set on exit so that handlers sleeping in "slow" mode return at once.
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        # Handler threads are joined on close, so no thread outlives the server.
        self._server.daemon_threads = False
        self._server.block_on_close = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/api/auth/jwks"

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._request_count

    def set_keys(self, keys: Iterable[dict[str, Any]]) -> None:
        """Replace the published key set (key rotation)."""
        self.set_document({"keys": list(keys)})

    def set_document(self, document: object) -> None:
        """Publish any JSON value, valid JWKS or not."""
        with self._lock:
            self._document = document

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _respond(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self._request_count += 1
            document = self._document
        mode = self.mode
        delay = self.latency_seconds + (self.slow_seconds if mode == "slow" else 0.0)
        if (delay and self._stopping.wait(delay)) or mode == "drop":
            handler.close_connection = True
            return
        if mode == "error":
            status, body = HTTPStatus.INTERNAL_SERVER_ERROR, b'{"error":"internal"}'
        elif mode == "garbage":
            status, body = HTTPStatus.OK, b"<html>not a key set</html>"
        else:
            status, body = HTTPStatus.OK, json.dumps(document).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except ConnectionError:
            # The client gave up first (its timeout is shorter than "slow"); that is the point.
            handler.close_connection = True

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._respond(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
