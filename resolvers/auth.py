"""Bearer-token verification: an HS256 shared secret and/or asymmetric keys published as a JWKS."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import jwt
from jwt.exceptions import InvalidSubjectError

from resolvers.errors import ServiceUnavailable, Unauthenticated

logger = logging.getLogger(__name__)

# The only key shapes (kty, accepted curves) a JWKS algorithm may be verified with. Every entry is
# asymmetric, so a published key can never end up as an HMAC secret, and a key is only used for
# the algorithm family it was made for (no RSA key verifying an "EdDSA" token, and so on).
_JWKS_KEY_SHAPES: Final[Mapping[str, tuple[str, frozenset[str] | None]]] = {
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
}

# Verifying a token costs a signature check; a client reuses its token for many requests, so a
# bounded memo of recent results keeps that cost off the hot path.
VERIFIED_TOKEN_CACHE_SIZE: Final = 10_000

_NUMERIC_DATE_CLAIMS: Final = ("exp", "iat", "nbf")


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Where verification keys come from and which claims a token must carry."""

    secret: str | None = None
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    leeway_seconds: int = 30
    jwks_algorithms: tuple[str, ...] = ("EdDSA", "ES256", "RS256", "PS256")
    jwks_timeout_seconds: float = 3.0
    jwks_cache_seconds: int = 300
    jwks_min_refetch_seconds: float = 10.0
    max_token_bytes: int = 8192


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated user: the verified token's subject, until the token's expiry."""

    user_id: str
    # `exp` as a Unix time: live streams end then (requests check it when they arrive).
    expires_at: float = field(default=math.inf, compare=False)


def bearer_token(authorization: str | None) -> str | None:
    """The token of a 'Bearer <token>' header (scheme case-insensitive); None without a header.

    Any other scheme, a missing token or extra words raise Unauthenticated.
    """
    if authorization is None:
        return None
    parts = authorization.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise Unauthenticated("The Authorization header must be 'Bearer <token>'")
    return parts[1]


def sign_development_token(
    secret: str,
    user_id: str,
    *,
    ttl_seconds: int = 86400,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """HS256 token for local development and the `token` CLI."""
    if not secret:
        raise ValueError("A development token needs a non-empty secret")
    if not user_id:
        raise ValueError("A development token needs a non-empty user id")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")


@dataclass(frozen=True, slots=True)
class _KeySet:
    """The usable signing keys of one JWKS document, indexed by the algorithm they verify."""

    by_algorithm: Mapping[str, tuple[tuple[str | None, jwt.PyJWK], ...]]
    key_ids: frozenset[str]

    def lookup(self, kid: str | None, algorithm: str) -> jwt.PyJWK | None:
        """The key for this token header; None when a newer key set might have it."""
        candidates = self.by_algorithm.get(algorithm, ())
        if kid is None:
            if len(candidates) > 1:
                raise Unauthenticated("Token has no key id and several keys could have signed it")
            return candidates[0][1] if candidates else None
        for candidate_kid, key in candidates:
            if candidate_kid == kid:
                return key
        if kid in self.key_ids:
            raise Unauthenticated("Token algorithm does not match its signing key")
        return None


def _parse_key_set(document: object, algorithms: tuple[str, ...]) -> tuple[_KeySet, int, int]:
    """The usable keys of a JWKS document, with the counts of entries used and skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("JWKS document has no 'keys' list")
    by_algorithm: dict[str, list[tuple[str | None, jwt.PyJWK]]] = {}
    key_ids: set[str] = set()
    used = skipped = 0
    for jwk in document["keys"]:
        usable = _usable_keys(jwk, algorithms)
        if not usable:
            skipped += 1
            continue
        used += 1
        kid = jwk.get("kid")
        if kid is not None:
            key_ids.add(kid)
        for algorithm, key in usable:
            by_algorithm.setdefault(algorithm, []).append((kid, key))
    if not by_algorithm:
        # An empty set would reject every user; treat it like an outage and keep the old keys.
        raise ValueError("JWKS document has no usable signing keys")
    return (
        _KeySet({alg: tuple(keys) for alg, keys in by_algorithm.items()}, frozenset(key_ids)),
        used,
        skipped,
    )


def _usable_keys(jwk: object, algorithms: tuple[str, ...]) -> list[tuple[str, jwt.PyJWK]]:
    """The (algorithm, key) pairs one JWKS entry may verify; empty for keys we must not use."""
    if not isinstance(jwk, dict):
        return []
    if jwk.get("use", "sig") != "sig" or not isinstance(jwk.get("kid", ""), str):
        return []
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return []
    declared_algorithm = jwk.get("alg")
    usable: list[tuple[str, jwt.PyJWK]] = []
    for algorithm in algorithms:
        kty, curves = _JWKS_KEY_SHAPES[algorithm]
        if jwk.get("kty") != kty or (curves is not None and jwk.get("crv") not in curves):
            continue
        if declared_algorithm is not None and declared_algorithm != algorithm:
            continue
        try:
            usable.append((algorithm, jwt.PyJWK(jwk, algorithm)))
        except jwt.PyJWTError:
            continue
    return usable


def _rejection_message(error: jwt.PyJWTError) -> str:
    """A client-facing reason built from the error type only, so it cannot echo the token."""
    if isinstance(error, jwt.ExpiredSignatureError):
        return "Token has expired"
    if isinstance(error, jwt.ImmatureSignatureError):
        return "Token is not valid yet"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"Token is missing the '{error.claim}' claim"
    if isinstance(error, jwt.InvalidAudienceError):
        return "Token audience is not accepted"
    if isinstance(error, jwt.InvalidIssuerError):
        return "Token issuer is not accepted"
    if isinstance(error, InvalidSubjectError):
        return "Token subject is invalid"
    if isinstance(error, jwt.InvalidSignatureError):
        return "Token signature is invalid"
    if isinstance(error, jwt.InvalidAlgorithmError):
        return "Token algorithm is not accepted"
    return "Token is malformed"


def _principal_from(claims: Mapping[str, Any]) -> tuple[Principal, float]:
    """The principal and expiry of verified claims, after the checks PyJWT leaves to us."""
    for name in _NUMERIC_DATE_CLAIMS:
        # PyJWT coerces with int(), which also accepts strings and booleans.
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise Unauthenticated(f"Token claim '{name}' must be a number")
    subject = claims.get("sub")
    # Checked here as well because PyJWT's own `sub` check differs between versions; NUL is
    # refused because the subject becomes a PostgreSQL text value.
    if not isinstance(subject, str) or not subject.strip() or "\x00" in subject:
        raise Unauthenticated("Token subject is invalid")
    expires_at = float(claims["exp"])
    return Principal(user_id=subject, expires_at=expires_at), expires_at


class TokenVerifier:
    """Verifies bearer tokens; one per process, shared by all requests."""

    def __init__(
        self, config: AuthConfig, *, on_jwks_fetch: Callable[[bool], None] | None = None
    ) -> None:
        """`on_jwks_fetch` is told whether each JWKS fetch succeeded (main.py counts them)."""
        if not config.secret and not config.jwks_url:
            raise ValueError("AuthConfig needs a secret, a jwks_url, or both")
        unsupported = sorted(set(config.jwks_algorithms) - _JWKS_KEY_SHAPES.keys())
        if unsupported:
            raise ValueError(f"Unsupported JWKS algorithms: {', '.join(unsupported)}")
        self._config = config
        self._on_jwks_fetch = on_jwks_fetch
        self._http: httpx.AsyncClient | None = None
        if config.jwks_url:
            if httpx.URL(config.jwks_url).scheme not in ("http", "https"):
                raise ValueError("jwks_url must be an http(s) URL")
            self._http = httpx.AsyncClient(
                timeout=config.jwks_timeout_seconds, headers={"Accept": "application/json"}
            )
        self._key_set: _KeySet | None = None
        self._key_set_fetched_at = -math.inf
        self._last_fetch_attempt_at = -math.inf
        self._last_unknown_kid_fetch_at = -math.inf
        self._last_fetch_failed = False
        self._fetch_task: asyncio.Task[None] | None = None
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        """The principal a valid token names; raises Unauthenticated or ServiceUnavailable."""
        if len(token) > self._config.max_token_bytes:
            raise Unauthenticated("Token is too large")
        # A JWT is ASCII by construction (which also makes len() above a byte count).
        if not token.isascii():
            raise Unauthenticated("Token is malformed")
        remembered = self._verified.get(token)
        if remembered is not None:
            principal, expires_at = remembered
            if time.time() < expires_at:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise Unauthenticated("Token is malformed") from error
        algorithm = header.get("alg")
        if not isinstance(algorithm, str):
            raise Unauthenticated("Token algorithm is not accepted")
        key = await self._key_for(algorithm, header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                options={
                    "require": ["exp", "sub"],
                    # Better Auth always sets `aud`; without a configured audience PyJWT would
                    # reject every such token instead of ignoring the claim.
                    "verify_aud": self._config.audience is not None,
                },
                audience=self._config.audience,
                issuer=self._config.issuer,
                leeway=self._config.leeway_seconds,
            )
        except jwt.PyJWTError as error:
            raise Unauthenticated(_rejection_message(error)) from error
        principal, expires_at = _principal_from(claims)
        self._remember(token, principal, expires_at)
        return principal

    async def aclose(self) -> None:
        """Stop any JWKS fetch in flight and close the HTTP client."""
        task = self._fetch_task
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        if self._http is not None:
            await self._http.aclose()

    def _remember(self, token: str, principal: Principal, expires_at: float) -> None:
        # Kept only until `exp` (without leeway), so a memo never accepts what a fresh
        # verification would reject. A key removed from the JWKS stays trusted for the tokens
        # already memoised; they expire soon (Better Auth: 15 minutes).
        if expires_at <= time.time():
            return
        self._verified[token] = (principal, expires_at)
        if len(self._verified) > VERIFIED_TOKEN_CACHE_SIZE:
            self._verified.popitem(last=False)

    async def _key_for(self, algorithm: str, kid: str | None) -> str | jwt.PyJWK:
        if algorithm == "HS256" and self._config.secret:
            return self._config.secret
        if algorithm in self._config.jwks_algorithms and self._http and self._config.jwks_url:
            return await self._jwks_key(self._http, self._config.jwks_url, kid, algorithm)
        raise Unauthenticated("Token algorithm is not accepted")

    async def _jwks_key(
        self, http: httpx.AsyncClient, url: str, kid: str | None, algorithm: str
    ) -> jwt.PyJWK:
        age = time.monotonic() - self._key_set_fetched_at
        fresh = self._key_set is not None and age < self._config.jwks_cache_seconds
        if self._key_set is not None:
            key = self._key_set.lookup(kid, algorithm)
            if key is not None and fresh:
                return key
        await self._refresh_key_set(http, url, unknown_kid=fresh)
        if self._key_set is not None:
            # After a failed refresh these are the previous keys: serving them beats locking
            # every user out while the auth server is unreachable.
            key = self._key_set.lookup(kid, algorithm)
            if key is not None:
                return key
        if self._last_fetch_failed:
            raise ServiceUnavailable(
                "Authentication keys are unavailable", retry_after=self._retry_after()
            )
        raise Unauthenticated("Token is signed with an unknown key")

    async def _refresh_key_set(
        self, http: httpx.AsyncClient, url: str, *, unknown_kid: bool
    ) -> None:
        """Fetch the JWKS unless a fetch is running (then wait for it) or one ran too recently."""
        if self._fetch_task is None:
            now = time.monotonic()
            interval = self._config.jwks_min_refetch_seconds
            # After a failure, back off rather than hammer an auth server that is struggling.
            if self._last_fetch_failed and now - self._last_fetch_attempt_at < interval:
                return
            # Unknown key ids are attacker-controlled: without a floor between such refetches,
            # each forged token would cost the auth server a request.
            if unknown_kid and now - self._last_unknown_kid_fetch_at < interval:
                return
            self._last_fetch_attempt_at = now
            if unknown_kid:
                self._last_unknown_kid_fetch_at = now
            self._fetch_task = asyncio.create_task(self._fetch_key_set(http, url))
        # Shielded: one request giving up must not cancel the fetch the others are waiting on.
        await asyncio.shield(self._fetch_task)

    async def _fetch_key_set(self, http: httpx.AsyncClient, url: str) -> None:
        try:
            # httpx's timeout bounds each phase; this bounds the whole exchange.
            async with asyncio.timeout(self._config.jwks_timeout_seconds):
                response = await http.get(url)
            response.raise_for_status()
            key_set, used, skipped = _parse_key_set(response.json(), self._config.jwks_algorithms)
        except (httpx.HTTPError, TimeoutError, ValueError) as error:
            self._last_fetch_failed = True
            logger.warning(
                "Fetching JWKS from %s failed (%s: %s); %s",
                url,
                type(error).__name__,
                error,
                "keeping the previous keys" if self._key_set else "no keys are available",
            )
        else:
            self._key_set = key_set
            self._key_set_fetched_at = time.monotonic()
            self._last_fetch_failed = False
            logger.info(
                "Fetched JWKS from %s: %d usable keys, %d entries skipped", url, used, skipped
            )
        finally:
            self._fetch_task = None
        if self._on_jwks_fetch is not None:
            self._on_jwks_fetch(not self._last_fetch_failed)

    def _retry_after(self) -> int:
        since_attempt = time.monotonic() - self._last_fetch_attempt_at
        return max(1, math.ceil(self._config.jwks_min_refetch_seconds - since_attempt))
