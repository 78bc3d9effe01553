"""Baseline (a): a bare Starlette endpoint that only verifies the signature and parses the JSON."""

from __future__ import annotations

import hashlib
import hmac
import os

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SECRET = os.environ.get("GOSENDAPI_WEBHOOK_SECRET", "whsec_bench").encode()


async def webhook(request: Request) -> Response:
    body = await request.body()
    given = request.headers.get("x-gosendapi-signature", "").removeprefix("sha256=")
    expected = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given.lower()):
        return JSONResponse({"error": "invalid_signature"}, status_code=401)
    orjson.loads(body)  # the same parser botkit uses, so the comparison is like for like
    return JSONResponse({"accepted": 1})


app = Starlette(routes=[Route("/webhook", webhook, methods=["POST"])])
