"""GET /readyz: whether this process should get traffic: the store answers, the worker runs,
and the oldest pending event is younger than BOTKIT_READY_MAX_AGE (GET /healthz, in app.py,
only says the process is up)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from botkit.exceptions import StoreError
from botkit.runtime.runtime import Runtime
from botkit.types import JSONObject
from botkit.web.trigger import json_response


class Readiness:
    """200 {"status": "ready", ...} or 503 {"status": "not ready", "reasons": [...]}."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def handle(self, request: Request) -> Response:
        """The readiness check."""
        reasons, checks = await self.check()
        status = 503 if reasons else 200
        body: JSONObject = {"status": "not ready" if reasons else "ready", "checks": checks}
        if reasons:
            body["reasons"] = list(reasons)
        return json_response(status, body)

    async def check(self) -> tuple[list[str], JSONObject]:
        """The reasons not to be ready (none: ready), and what each check found."""
        reasons: list[str] = []
        checks: JSONObject = {}
        try:
            pending = await self.runtime.store.inspect.pending()
        except StoreError as exc:
            checks["store"] = "unreachable"
            reasons.append(f"the store is unreachable: {exc}")
            pending = None
        else:
            checks["store"] = "ok"
        worker = self.runtime.worker_process
        if worker is not None:
            checks["worker"] = "running" if worker.alive else "down"
            if not worker.alive:
                reasons.append("the worker process is down (it is restarted after a pause)")
        if pending is not None:
            age = pending.oldest_event
            limit = self.runtime.settings.ready_max_age
            checks["pending_events"] = pending.events
            checks["oldest_pending_event_seconds"] = None if age is None else round(age, 3)
            if age is not None and age > limit:
                reasons.append(
                    f"the oldest pending event has waited {age:.0f}s, more than "
                    f"BOTKIT_READY_MAX_AGE ({limit:g}s): events are not processed fast enough"
                )
        return reasons, checks


def health_routes(runtime: Runtime) -> list[Route]:
    """The route of GET /readyz."""
    return [Route("/readyz", Readiness(runtime).handle, methods=["GET"])]


__all__ = ["Readiness", "health_routes"]
