"""A stand-in for Instructure's published Live Events keys, for local development: Canvas signs its Live Events
("Sign Payload") with RS256 keys that Instructure publishes as a JWK set; here the sandbox holds one RSA key of its
own, made on first use and kept for the process (a reset keeps it), publishes its public half, and signs on request
so that `devtools.send --canvas-example` can post an event signed as Canvas would.

    GET  /_sandbox/canvas/jwks     {"keys": [the public key]}: what a provider's canvasJwksUrl names locally
    POST /_sandbox/canvas/sign     a JSON object (the event) -> {"token": its RS256 JWT, valid for 5 minutes}
"""

from __future__ import annotations

import json
import time
from functools import cache
from typing import Any, Final

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

PREFIX: Final = "/_sandbox/canvas"
KID: Final = "sandbox-canvas-live-events"
TOKEN_LIFETIME_SECONDS: Final = 300


@cache
def _private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_set() -> dict[str, Any]:
    public = json.loads(RSAAlgorithm.to_jwk(_private_key().public_key()))
    return {"keys": [{**public, "kid": KID, "alg": "RS256", "use": "sig"}]}


def sign(event: dict[str, Any]) -> str:
    now = int(time.time())
    claims = {**event, "iat": now, "exp": now + TOKEN_LIFETIME_SECONDS}
    return jwt.encode(claims, _private_key(), algorithm="RS256", headers={"kid": KID})


async def _jwks(request: web.Request) -> web.Response:
    return web.json_response(key_set())


async def _sign(request: web.Request) -> web.Response:
    try:
        event = json.loads(await request.read())
    except ValueError:
        event = None
    if not isinstance(event, dict):
        return web.json_response({"error": "sign takes a JSON object: the Live Event to sign"}, status=400)
    return web.json_response({"token": sign(event)})


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/jwks", _jwks)
    app.router.add_post(f"{PREFIX}/sign", _sign)
