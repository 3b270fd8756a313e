"""The platforms' own formats for tests: their realistic bodies (devtools.platform_examples, shared with
`devtools.send`), a signing key set of the test's own, the fold of mapped events in any order, and fuzzing values."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import strategies as st
from jwt.algorithms import RSAAlgorithm

from connector.domain.formats.mapped import MappedEvent
from connector.domain.merge import MergedState, Stamp, fold
from devtools.platform_examples import (  # noqa: F401 (re-exported for the tests)
    CANVAS_ROOT,
    CANVAS_SUBMISSION,
    COURSE_IRI,
    LEARNER_EMAIL,
    LEARNER_IRI,
    SCORM_REGISTRATION,
    SCORM_REPORT_XML,
    V1P1,
    V1P2,
    attempt,
    caliper_event,
    course,
    course_completed,
    course_progress,
    enrollment,
    envelope,
    person,
    registration,
    units_completed,
)

# --- Canvas's signed form: a key set of the test's own (Instructure's stays unknown to tests) ---


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    @property
    def jwk(self) -> dict[str, Any]:
        public = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {**public, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def sign(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        """An RS256 JWT of `claims`, its header naming this key (or `kid`)."""
        header = {"kid": self.kid if kid is None else kid}
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers=header)


def signing_key(kid: str) -> SigningKey:
    return SigningKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def jwks(*keys: SigningKey) -> dict[str, Any]:
    """A JWK set as Instructure publishes it (previous, current and next key)."""
    return {"keys": [key.jwk for key in keys]}


# --- Folding ---


def fold_shuffled(mapped: Sequence[MappedEvent], orders: int = 30) -> list[dict[str, Any]]:
    """The merged values after folding `mapped` in `orders` shuffled orders (each with a redelivery)."""
    results = []
    for seed in range(orders):
        order = [*mapped, random.Random(seed).choice(mapped)]
        random.Random(seed).shuffle(order)
        state = MergedState()
        for event in order:
            state = fold(state, event.changes, Stamp(event.event_time, 0, event.event_id))
        results.append(dict(state.values))
    return results


#: Any JSON value, for fuzzing parsers with bodies they never saw.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
