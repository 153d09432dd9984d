"""The privacy API on the worker's web server: erasure requests and the transparency document.

* ``POST /privacy/erasures`` with ``{"user_key": "...", "reason": "..."}``: publishes an
  ``erasure-request.v1`` to the erasures topic (keyed by the user key, so it reaches the worker
  holding the user's state) and answers ``202`` with the request id once the broker acknowledged
  it; agents.erasure carries it out and writes the audit record.
* ``GET /privacy/users/{user_key}``: what the system holds about the user and why their last
  decision was made (stream.transparency), ``404`` when it holds nothing. Served by the worker
  that owns the user's partition; another worker forwards the request there (Faust's router).

Both need ``Authorization: Bearer <token>`` with a token of ``LIVEPROFILES_PRIVACY_TOKENS``;
the token's name is who the audit record says asked. On the worker rather than the collector:
the transparency document is read from the worker's own tables, and an erasure is the worker's
state to remove; the collector faces the internet with SDK write keys, which must not reach
anyone's data.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable
from typing import Any

import faust
import orjson
from faust.exceptions import SameNode
from faust.web import Request, Response, View

from agents.erasure import Eraser
from agents.settings import Settings
from stream import Profile, StepConfig
from stream.erasure import ErasureRequest, subject_of
from stream.exceptions import SnapshotError
from stream.transparency import describe

__all__ = ["register_privacy"]

#: Erasure request bodies are a user key and a reason: anything larger is a mistake.
MAX_BODY_BYTES = 4096


def register_privacy(
    app: faust.App,
    settings: Settings,
    profiles: Any,
    eraser: Eraser,
    config: StepConfig,
    clock: Callable[[], int],
) -> None:
    tokens = settings.privacy_token_names()
    names = settings.names
    secret = settings.privacy_secret.encode()

    def caller(view: View, request: Request) -> str | Response:
        """The token's name, or the error response to answer with."""
        if not tokens:
            return _error(view, 503, "privacy API disabled: set LIVEPROFILES_PRIVACY_TOKENS")
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            for token, name in tokens.items():
                if hmac.compare_digest(token.encode(), presented.strip().encode()):
                    return name
        return _error(view, 401, "a valid bearer token is required")

    @app.page("/privacy/erasures")
    class Erasures(View):
        async def post(self, request: Request) -> Response:
            who = caller(self, request)
            if not isinstance(who, str):
                return who
            body = await request.read()
            if len(body) > MAX_BODY_BYTES:
                return _error(self, 413, f"body larger than {MAX_BODY_BYTES} bytes")
            try:
                doc = orjson.loads(body)
                erasure = ErasureRequest(
                    request_id=uuid.uuid4().hex,
                    user_key=doc["user_key"],
                    requested_by=who,
                    requested_at_ms=clock(),
                    reason=doc.get("reason", ""),
                )
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
                return _error(self, 400, f"expected {{'user_key': str, 'reason': str}}: {exc}")
            await app.producer.send_and_wait(
                names.erasures, erasure.user_key.encode(), erasure.to_bytes(), None, None, None
            )
            return self.json(
                {
                    "request_id": erasure.request_id,
                    "subject": subject_of(erasure.user_key, secret),
                    "status": "accepted",
                    "audit_topic": names.audit,
                },
                status=202,
            )

    @app.page("/privacy/users/{user_key}")
    class Users(View):
        async def get(self, request: Request, user_key: str) -> Response:
            who = caller(self, request)
            if not isinstance(who, str):
                return who
            try:
                return await app.router.route_req(
                    profiles.name, user_key.encode(), self.web, request
                )
            except SameNode:
                pass
            stored = profiles.get(user_key.encode())
            if stored is None:
                suppression = eraser.suppression_of(user_key)
                held = {"user_key": user_key, "held": "nothing"}
                if suppression is not None:
                    held["erased_by_request"] = suppression.request_id
                return self.json(held, status=404)
            try:
                profile = Profile.from_bytes(stored)
            except SnapshotError as exc:  # its next event dead-letters it (agents.batch)
                return _error(self, 500, f"the stored profile cannot be read: {exc}")
            return self.json(describe(profile, config))


def _error(view: View, status: int, message: str) -> Response:
    return view.json({"error": message}, status=status)
