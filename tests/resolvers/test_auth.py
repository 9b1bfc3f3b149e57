"""TokenVerifier and bearer_token against real tokens, real keys and a loopback JWKS endpoint."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import jwt
import pytest

from resolvers.auth import (
    AuthConfig,
    Principal,
    TokenVerifier,
    bearer_token,
    sign_development_token,
)
from resolvers.errors import ServiceUnavailable, Unauthenticated
from tests.support.jwks import (
    JwksServer,
    ServerMode,
    SigningKey,
    b64url,
    ed25519_key,
    es256_key,
    raw_hs256_token,
    rs256_key,
    sign,
    unsigned_token,
)

# 64 bytes, so that even the HS512 token (which must be refused) is signed without a warning.
SECRET = "a-test-secret-long-enough-for-hs256-and-hs512-without-warnings!!"
USER_ID = "Xq3bS7kP1zR9tY2wV8nM4cL6hJ0fD5gA"  # Better Auth ids are 32 characters
ISSUER = AUDIENCE = "http://localhost:3000"

ED = ed25519_key("ed-1")
EC = es256_key("ec-1")
RSA = rs256_key("rsa-1")
UNPUBLISHED = ed25519_key("ed-unpublished")

OMIT = object()


def claims(**overrides: Any) -> dict[str, Any]:
    """A valid claim set for USER_ID; an override of OMIT removes that claim."""
    now = int(time.time())
    values: dict[str, Any] = {"sub": USER_ID, "iat": now, "exp": now + 900}
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not OMIT}


def better_auth_claims(**overrides: Any) -> dict[str, Any]:
    """What Better Auth's JWT plugin puts in a token."""
    now = int(time.time())
    base = {
        "iat": now,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": USER_ID,
        "exp": now + 900,
        "email": "ada@example.com",
        "name": "Ada",
        "emailVerified": True,
        "image": None,
    }
    return {name: value for name, value in {**base, **overrides}.items() if value is not OMIT}


def hs256(payload: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def with_payload(token: str, payload: dict[str, Any]) -> str:
    """The token with its payload swapped and the original signature kept."""
    header, _, signature = token.split(".")
    return f"{header}.{b64url(json.dumps(payload).encode())}.{signature}"


def published(*keys: SigningKey) -> list[dict[str, Any]]:
    return [key.public_jwk() for key in keys]


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    with JwksServer(published(ED, EC, RSA)) as server:
        yield server


@dataclass
class Verifiers:
    """Builds verifiers from config keywords; "jwks_url=True" means the test server's URL."""

    jwks_url: str
    made: list[TokenVerifier] = field(default_factory=list)

    def __call__(self, **config: Any) -> TokenVerifier:
        if config.get("jwks_url") is True:
            config["jwks_url"] = self.jwks_url
        verifier = TokenVerifier(AuthConfig(**config))
        self.made.append(verifier)
        return verifier


@pytest.fixture
async def verifiers(jwks_server: JwksServer) -> AsyncIterator[Verifiers]:
    made = Verifiers(jwks_server.url)
    yield made
    for verifier in made.made:
        await verifier.aclose()


SECRET_ONLY: dict[str, Any] = {"secret": SECRET}
JWKS_ONLY: dict[str, Any] = {"jwks_url": True}
BOTH: dict[str, Any] = {"secret": SECRET, "jwks_url": True}
BETTER_AUTH: dict[str, Any] = {"jwks_url": True, "issuer": ISSUER, "audience": AUDIENCE}


# --- bearer_token -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc.def.ghi", "abc.def.ghi"),
        ("BEARER   abc.def.ghi  ", "abc.def.ghi"),
    ],
)
def test_bearer_token_accepts(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected


@pytest.mark.parametrize(
    "header",
    ["", "   ", "Bearer", "Bearer ", "Basic dXNlcjpzZWNyZXQ=", "Token abc", "abc", "Bearer a b"],
)
def test_bearer_token_rejects(header: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        bearer_token(header)
    assert "dXNlcjpzZWNyZXQ" not in caught.value.message


# --- accepted tokens ----------------------------------------------------------------------------

ACCEPTED: list[tuple[str, dict[str, Any], Callable[[], str]]] = [
    ("hs256", SECRET_ONLY, lambda: hs256(claims())),
    ("eddsa", JWKS_ONLY, lambda: sign(claims(), ED)),
    ("es256", JWKS_ONLY, lambda: sign(claims(), EC)),
    ("rs256", JWKS_ONLY, lambda: sign(claims(), RSA)),
    ("ps256-with-rsa-key", JWKS_ONLY, lambda: sign(claims(), RSA, "PS256")),
    ("hs256-when-both-configured", BOTH, lambda: hs256(claims())),
    ("eddsa-when-both-configured", BOTH, lambda: sign(claims(), ED)),
    ("better-auth", BETTER_AUTH, lambda: sign(better_auth_claims(), ED)),
    # Better Auth always sends `aud`; an unconfigured audience must not reject it.
    ("better-auth-audience-unconfigured", JWKS_ONLY, lambda: sign(better_auth_claims(), ED)),
    ("within-leeway-expired", SECRET_ONLY, lambda: hs256(claims(exp=int(time.time()) - 5))),
    ("within-leeway-iat", SECRET_ONLY, lambda: hs256(claims(iat=int(time.time()) + 5))),
    ("nbf-past", SECRET_ONLY, lambda: hs256(claims(nbf=int(time.time()) - 5))),
    (
        "aud-list-containing-ours",
        BETTER_AUTH,
        lambda: sign(better_auth_claims(aud=["x", AUDIENCE]), ED),
    ),
    ("no-kid-single-key-for-alg", JWKS_ONLY, lambda: sign(claims(), EC, omit_kid=True)),
]


@pytest.mark.parametrize(
    ("config", "make_token"), [row[1:] for row in ACCEPTED], ids=[row[0] for row in ACCEPTED]
)
async def test_accepts(
    verifiers: Verifiers, config: dict[str, Any], make_token: Callable[[], str]
) -> None:
    principal = await verifiers(**config).verify(make_token())
    assert principal == Principal(user_id=USER_ID)


@pytest.mark.parametrize("include_alg", [False, True], ids=["jwk-without-alg", "jwk-with-alg"])
async def test_better_auth_jwks_shapes(verifiers: Verifiers, include_alg: bool) -> None:
    with JwksServer([ED.public_jwk(include_alg=include_alg)]) as server:
        verifier = verifiers(jwks_url=server.url, issuer=ISSUER, audience=AUDIENCE)
        token = sign(better_auth_claims(), ED, headers={"typ": None})
        assert await verifier.verify(token) == Principal(USER_ID)


# --- rejected tokens ----------------------------------------------------------------------------


def _expired() -> str:
    return hs256(claims(exp=int(time.time()) - 120))


def _tampered(make: Callable[[], str]) -> Callable[[], str]:
    return lambda: with_payload(make(), claims(sub="someone-else"))


def _flipped_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{header}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


def _b64(text: str) -> str:
    return b64url(text.encode())


REJECTED: list[tuple[str, dict[str, Any], Callable[[], str]]] = [
    ("empty", BOTH, lambda: ""),
    ("garbage", BOTH, lambda: "not-a-jwt"),
    ("two-segments", BOTH, lambda: hs256(claims()).rsplit(".", 1)[0]),
    ("four-segments", BOTH, lambda: hs256(claims()) + ".AAAA"),
    ("bad-base64", BOTH, lambda: "!!!!.@@@@.####"),
    ("header-not-json", BOTH, lambda: f"{_b64('hello')}.{_b64('{}')}.AAAA"),
    ("header-not-object", BOTH, lambda: f"{_b64('[1]')}.{_b64('{}')}.AAAA"),
    ("payload-not-json", SECRET_ONLY, lambda: raw_hs256_token("not json", SECRET.encode())),
    ("payload-not-object", SECRET_ONLY, lambda: raw_hs256_token("[1, 2]", SECRET.encode())),
    ("non-ascii", BOTH, lambda: hs256(claims()) + "é"),
    ("alg-none", BOTH, lambda: unsigned_token(claims())),
    ("alg-None", BOTH, lambda: unsigned_token(claims(), alg="None")),
    ("alg-none-with-kid", JWKS_ONLY, lambda: unsigned_token(claims(), kid=ED.kid)),
    ("alg-missing", BOTH, lambda: f"{_b64('{}')}.{_b64(json.dumps(claims()))}.AAAA"),
    ("alg-not-string", BOTH, lambda: unsigned_token(claims(), alg=["HS256"]) + "AAAA"),
    *[
        (f"hs256-with-{key.alg}-public-{form}-{config_name}", config, make)
        for key in (ED, EC, RSA)
        for form, make in [
            ("pem", lambda key=key: raw_hs256_token(claims(), key.public_pem(), kid=key.kid)),
            (
                "jwk",
                lambda key=key: raw_hs256_token(
                    claims(), json.dumps(key.public_jwk()).encode(), kid=key.kid
                ),
            ),
        ]
        for config_name, config in [("jwks", JWKS_ONLY), ("both", BOTH)]
    ],
    ("rs256-when-only-secret", SECRET_ONLY, lambda: sign(claims(), RSA)),
    ("eddsa-when-only-secret", SECRET_ONLY, lambda: sign(claims(), ED)),
    ("hs256-when-only-jwks", JWKS_ONLY, lambda: hs256(claims())),
    ("es384-not-allowed", JWKS_ONLY, lambda: unsigned_token(claims(), alg="ES384") + "AAAA"),
    ("hs512-not-allowed", SECRET_ONLY, lambda: jwt.encode(claims(), SECRET, algorithm="HS512")),
    ("eddsa-token-naming-rsa-kid", JWKS_ONLY, lambda: sign(claims(), ED, kid=RSA.kid)),
    ("rs256-token-naming-ed-kid", JWKS_ONLY, lambda: sign(claims(), RSA, kid=ED.kid)),
    ("expired", SECRET_ONLY, _expired),
    ("expired-jwks", JWKS_ONLY, lambda: sign(claims(exp=int(time.time()) - 120), ED)),
    ("nbf-future", SECRET_ONLY, lambda: hs256(claims(nbf=int(time.time()) + 120))),
    ("iat-future", SECRET_ONLY, lambda: hs256(claims(iat=int(time.time()) + 120))),
    ("wrong-iss", BETTER_AUTH, lambda: sign(better_auth_claims(iss="http://evil.test"), ED)),
    ("missing-iss", BETTER_AUTH, lambda: sign(better_auth_claims(iss=OMIT), ED)),
    ("iss-differs-by-slash", BETTER_AUTH, lambda: sign(better_auth_claims(iss=ISSUER + "/"), ED)),
    ("wrong-aud", BETTER_AUTH, lambda: sign(better_auth_claims(aud="http://evil.test"), ED)),
    ("missing-aud", BETTER_AUTH, lambda: sign(claims(iss=ISSUER), ED)),
    ("missing-sub", SECRET_ONLY, lambda: hs256(claims(sub=OMIT))),
    ("int-sub", SECRET_ONLY, lambda: hs256(claims(sub=42))),
    ("empty-sub", SECRET_ONLY, lambda: hs256(claims(sub=""))),
    ("blank-sub", SECRET_ONLY, lambda: hs256(claims(sub="   "))),
    ("nul-in-sub", SECRET_ONLY, lambda: hs256(claims(sub="user\x00"))),
    ("null-sub", SECRET_ONLY, lambda: hs256(claims(sub=None))),
    ("missing-exp", SECRET_ONLY, lambda: hs256(claims(exp=OMIT))),
    ("null-exp", SECRET_ONLY, lambda: hs256(claims(exp=None))),
    ("string-exp", SECRET_ONLY, lambda: hs256(claims(exp=str(int(time.time()) + 900)))),
    ("bool-iat", SECRET_ONLY, lambda: hs256(claims(iat=True))),
    ("over-8kb", SECRET_ONLY, lambda: hs256(claims(padding="x" * 8200))),
    ("unknown-kid", JWKS_ONLY, lambda: sign(claims(), UNPUBLISHED)),
    ("tampered-hs256", SECRET_ONLY, _tampered(lambda: hs256(claims()))),
    ("tampered-eddsa", JWKS_ONLY, _tampered(lambda: sign(claims(), ED))),
    ("tampered-rs256", JWKS_ONLY, _tampered(lambda: sign(claims(), RSA))),
    ("flipped-signature-es256", JWKS_ONLY, lambda: _flipped_signature(sign(claims(), EC))),
    (
        "wrong-secret",
        SECRET_ONLY,
        lambda: hs256(claims(), "another-secret-of-the-same-length!!!!!"),
    ),
]


@pytest.mark.parametrize(
    ("config", "make_token"), [row[1:] for row in REJECTED], ids=[row[0] for row in REJECTED]
)
async def test_rejects(
    verifiers: Verifiers, config: dict[str, Any], make_token: Callable[[], str]
) -> None:
    token = make_token()
    with pytest.raises(Unauthenticated) as caught:
        await verifiers(**config).verify(token)
    message = caught.value.message
    assert str(caught.value) == message
    for fragment in [token, *token.split(".")]:
        assert len(fragment) < 8 or fragment not in message


async def test_jwks_symmetric_key_is_never_an_hmac_secret(verifiers: Verifiers) -> None:
    secret = b"published-by-mistake-32-bytes-long!!"
    oct_key = {"kty": "oct", "kid": "oct-1", "k": b64url(secret), "alg": "HS256"}
    with JwksServer([oct_key, ED.public_jwk()]) as server:
        verifier = verifiers(jwks_url=server.url, jwks_algorithms=("EdDSA",))
        with pytest.raises(Unauthenticated):
            await verifier.verify(raw_hs256_token(claims(), secret, kid="oct-1"))


async def test_jwk_declared_alg_binds_the_key(verifiers: Verifiers) -> None:
    with JwksServer([RSA.public_jwk(include_alg=True)]) as server:
        verifier = verifiers(jwks_url=server.url)
        assert await verifier.verify(sign(claims(), RSA, "RS256")) == Principal(USER_ID)
        with pytest.raises(Unauthenticated):
            await verifier.verify(sign(claims(), RSA, "PS256"))


async def test_unusable_jwks_entries_are_skipped(verifiers: Verifiers) -> None:
    entries: list[Any] = [
        "not an object",
        {"kty": "unknown", "kid": "x"},
        {"kty": "EC", "crv": "P-256", "kid": "broken", "x": "AAAA", "y": "AAAA"},
        EC.public_jwk(use="enc"),
        RSA.public_jwk(key_ops=["encrypt"]),
        ED.public_jwk(kid=7),
        ED.public_jwk(),
    ]
    with JwksServer(entries) as server:
        verifier = verifiers(jwks_url=server.url)
        assert await verifier.verify(sign(claims(), ED)) == Principal(USER_ID)
        for key in (EC, RSA):
            with pytest.raises(Unauthenticated):
                await verifier.verify(sign(claims(), key))


async def test_kidless_token_is_ambiguous_with_several_keys(verifiers: Verifiers) -> None:
    second = ed25519_key("ed-2")
    with JwksServer(published(ED, second)) as server:
        verifier = verifiers(jwks_url=server.url)
        with pytest.raises(Unauthenticated):
            await verifier.verify(sign(claims(), ED, omit_kid=True))
        assert await verifier.verify(sign(claims(), second)) == Principal(USER_ID)


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (AuthConfig(), "secret, a jwks_url"),
        (AuthConfig(secret=""), "secret, a jwks_url"),
        (
            AuthConfig(jwks_url="http://127.0.0.1:1/jwks", jwks_algorithms=("EdDSA", "HS256")),
            "Unsupported JWKS algorithms: HS256",
        ),
        (
            AuthConfig(jwks_url="http://127.0.0.1:1/jwks", jwks_algorithms=("none",)),
            "Unsupported JWKS algorithms: none",
        ),
        (AuthConfig(jwks_url="file:///etc/jwks.json"), "http"),
    ],
    ids=["nothing", "empty-secret", "hs256-in-jwks", "none-in-jwks", "not-http"],
)
def test_rejects_unsafe_configuration(config: AuthConfig, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        TokenVerifier(config)


async def test_development_token_round_trip(verifiers: Verifiers) -> None:
    verifier = verifiers(secret=SECRET, issuer="taskql-dev", audience="taskql")
    token = sign_development_token(SECRET, "dev-user", issuer="taskql-dev", audience="taskql")
    assert await verifier.verify(token) == Principal("dev-user")
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    with pytest.raises(Unauthenticated):
        await verifiers(secret=SECRET, issuer="production").verify(token)


# --- JWKS fetching ------------------------------------------------------------------------------


async def test_unknown_kid_refetches_once_then_rate_limits(
    verifiers: Verifiers, jwks_server: JwksServer
) -> None:
    verifier = verifiers(jwks_url=True, jwks_min_refetch_seconds=60)
    await verifier.verify(sign(claims(), ED))
    assert jwks_server.request_count == 1

    with pytest.raises(Unauthenticated):
        await verifier.verify(sign(claims(), UNPUBLISHED))
    assert jwks_server.request_count == 2

    with pytest.raises(Unauthenticated):
        await verifier.verify(sign(claims(), ed25519_key("ed-forged")))
    assert jwks_server.request_count == 2

    await verifier.verify(sign(claims(), EC))
    assert jwks_server.request_count == 2


async def test_key_rotation(verifiers: Verifiers, jwks_server: JwksServer) -> None:
    verifier = verifiers(jwks_url=True)
    await verifier.verify(sign(claims(), ED))
    assert jwks_server.request_count == 1

    rotated = ed25519_key("ed-rotated")
    jwks_server.set_keys(published(rotated))
    assert await verifier.verify(sign(claims(), rotated)) == Principal(USER_ID)
    assert jwks_server.request_count == 2

    # The retired key left the set, so a new token signed with it no longer verifies (and, the
    # refetch for unknown kids being rate-limited, costs no request).
    with pytest.raises(Unauthenticated):
        await verifier.verify(sign(claims(jti="new"), ED))
    assert jwks_server.request_count == 2


async def test_key_set_is_refetched_after_cache_lifetime(
    verifiers: Verifiers, jwks_server: JwksServer
) -> None:
    verifier = verifiers(jwks_url=True, jwks_cache_seconds=0, jwks_min_refetch_seconds=0)
    await verifier.verify(sign(claims(), ED))
    await verifier.verify(sign(claims(jti="2"), ED))
    assert jwks_server.request_count == 2


DOWN_MODES = ["error", "garbage", "drop", "empty-key-set", "not-a-key-set"]


def take_down(server: JwksServer, how: str) -> None:
    if how == "empty-key-set":
        server.set_keys([])
    elif how == "not-a-key-set":
        server.set_document(["keys"])
    else:
        server.mode = cast(ServerMode, how)


@pytest.mark.slow
@pytest.mark.parametrize("how", [*DOWN_MODES, "slow"])
async def test_jwks_down_cached_key_still_verifies(
    verifiers: Verifiers, jwks_server: JwksServer, how: str
) -> None:
    # A zero cache lifetime makes every verification try to refetch, so the outage is hit.
    verifier = verifiers(
        jwks_url=True,
        jwks_cache_seconds=0,
        jwks_min_refetch_seconds=0,
        jwks_timeout_seconds=0.5,
    )
    await verifier.verify(sign(claims(), ED))
    take_down(jwks_server, how)

    started = time.monotonic()
    assert await verifier.verify(sign(claims(jti="after-outage"), ED)) == Principal(USER_ID)
    assert time.monotonic() - started < 0.5 + 1
    assert jwks_server.request_count == 2


async def test_jwks_down_within_cache_lifetime_needs_no_request(
    verifiers: Verifiers, jwks_server: JwksServer
) -> None:
    verifier = verifiers(jwks_url=True)
    await verifier.verify(sign(claims(), ED))
    jwks_server.mode = "error"
    await verifier.verify(sign(claims(), RSA))
    assert jwks_server.request_count == 1


@pytest.mark.slow
@pytest.mark.parametrize("how", DOWN_MODES)
async def test_jwks_down_and_key_not_cached_is_unavailable(
    verifiers: Verifiers, jwks_server: JwksServer, how: str
) -> None:
    timeout = 2.0
    verifier = verifiers(jwks_url=True, jwks_timeout_seconds=timeout, jwks_min_refetch_seconds=0.3)
    take_down(jwks_server, how)
    token = sign(claims(), ED)

    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as caught:
        await verifier.verify(token)
    assert time.monotonic() - started < timeout + 1
    assert caught.value.message == "Authentication keys are unavailable"
    assert caught.value.retry_after >= 1
    assert jwks_server.request_count == 1

    # Within the refetch interval the outage is reported without asking the server again.
    with pytest.raises(ServiceUnavailable):
        await verifier.verify(token)
    assert jwks_server.request_count == 1

    jwks_server.mode = "up"
    jwks_server.set_keys(published(ED))
    await asyncio.sleep(0.35)
    assert await verifier.verify(token) == Principal(USER_ID)
    assert jwks_server.request_count == 2


async def test_jwks_down_and_new_kid_is_unavailable(
    verifiers: Verifiers, jwks_server: JwksServer
) -> None:
    verifier = verifiers(jwks_url=True, jwks_min_refetch_seconds=0)
    await verifier.verify(sign(claims(), ED))
    jwks_server.mode = "error"
    with pytest.raises(ServiceUnavailable):
        await verifier.verify(sign(claims(), UNPUBLISHED))
    assert await verifier.verify(sign(claims(jti="cached-kid"), ED)) == Principal(USER_ID)


async def test_jwks_unreachable_is_unavailable_quickly(verifiers: Verifiers) -> None:
    with JwksServer() as server:
        url = server.url
    verifier = verifiers(jwks_url=url, jwks_timeout_seconds=2.0)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        await verifier.verify(sign(claims(), ED))
    assert time.monotonic() - started < 2.0 + 1


@pytest.mark.slow
async def test_slow_jwks_is_unavailable_within_timeout(
    verifiers: Verifiers, jwks_server: JwksServer
) -> None:
    timeout = 0.5
    verifier = verifiers(jwks_url=True, jwks_timeout_seconds=timeout)
    jwks_server.mode = "slow"

    started = time.monotonic()
    results = await asyncio.gather(
        *(verifier.verify(sign(claims(jti=str(i)), ED)) for i in range(5)),
        return_exceptions=True,
    )
    elapsed = time.monotonic() - started
    assert all(isinstance(result, ServiceUnavailable) for result in results)
    assert timeout * 0.8 < elapsed < timeout + 1
    assert jwks_server.request_count == 1


@pytest.mark.parametrize("kind", ["known-kids", "unknown-kids"])
async def test_concurrent_verifications_share_one_fetch(
    verifiers: Verifiers, jwks_server: JwksServer, kind: str
) -> None:
    jwks_server.latency_seconds = 0.2
    verifier = verifiers(jwks_url=True, jwks_min_refetch_seconds=0)
    keys = [ED, EC, RSA] if kind == "known-kids" else [ed25519_key(f"forged-{i}") for i in range(3)]
    tokens = [sign(claims(jti=str(i)), keys[i % 3]) for i in range(30)]

    results = await asyncio.gather(*(verifier.verify(t) for t in tokens), return_exceptions=True)

    expected = Principal if kind == "known-kids" else Unauthenticated
    assert all(isinstance(result, expected) for result in results), results
    assert jwks_server.request_count == 1


async def test_cancelled_request_does_not_cancel_the_shared_fetch(
    verifiers: Verifiers, jwks_server: JwksServer
) -> None:
    jwks_server.latency_seconds = 0.2
    verifier = verifiers(jwks_url=True)
    impatient = asyncio.create_task(verifier.verify(sign(claims(), ED)))
    patient = asyncio.create_task(verifier.verify(sign(claims(jti="2"), EC)))
    await asyncio.sleep(0.05)
    impatient.cancel()
    assert await patient == Principal(USER_ID)
    assert impatient.cancelled()
    assert jwks_server.request_count == 1


# --- verified-token cache -----------------------------------------------------------------------


async def test_verified_token_is_remembered(verifiers: Verifiers, jwks_server: JwksServer) -> None:
    verifier = verifiers(jwks_url=True, jwks_cache_seconds=0, jwks_min_refetch_seconds=0)
    token = sign(claims(), ED)
    first = await verifier.verify(token)
    jwks_server.mode = "error"
    assert await verifier.verify(token) is first
    # A remembered token costs no key lookup, hence no refetch despite the zero cache lifetime.
    assert jwks_server.request_count == 1


@pytest.mark.slow
async def test_remembered_token_never_outlives_exp(verifiers: Verifiers) -> None:
    verifier = verifiers(secret=SECRET, leeway_seconds=0)
    expires_at = math.ceil(time.time()) + 1
    token = hs256(claims(exp=expires_at))
    assert await verifier.verify(token) == Principal(USER_ID)

    await asyncio.sleep(expires_at - time.time() + 0.05)
    with pytest.raises(Unauthenticated, match="expired"):
        await verifier.verify(token)


async def test_failures_are_not_remembered(verifiers: Verifiers, jwks_server: JwksServer) -> None:
    verifier = verifiers(jwks_url=True, jwks_min_refetch_seconds=0)
    token = sign(claims(), UNPUBLISHED)
    with pytest.raises(Unauthenticated):
        await verifier.verify(token)

    jwks_server.set_keys(published(ED, UNPUBLISHED))
    assert await verifier.verify(token) == Principal(USER_ID)


async def test_jwks_fetches_are_logged_without_tokens(
    verifiers: Verifiers, jwks_server: JwksServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="resolvers.auth")
    verifier = verifiers(jwks_url=True, jwks_min_refetch_seconds=0)
    good, forged = sign(claims(), ED), sign(claims(), UNPUBLISHED)
    await verifier.verify(good)
    jwks_server.mode = "error"
    with pytest.raises(ServiceUnavailable):
        await verifier.verify(forged)

    levels = [record.levelno for record in caplog.records]
    assert levels == [logging.INFO, logging.WARNING]
    assert "3 usable keys" in caplog.records[0].getMessage()
    assert "keeping the previous keys" in caplog.records[1].getMessage()
    for token in (good, forged):
        assert all(part not in caplog.text for part in token.split("."))
