"""A short load on a running clinic bot, for the dashboard's picture: many users through the
clinic's flow (a few of them off the path, a few redeliveries), delivery statuses of what the bot
sent, some provider faults (5xx, 429) and a few bad requests (a wrong signature, not a webhook).

Run:  python -m bench.dashboard.load --bot http://127.0.0.1:8000 --fake http://127.0.0.1:8001 \
          --secret whsec_... [--seconds 60] [--slots 30]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import time
from collections import Counter
from typing import Any

import httpx

from bench.envelopes import CLINIC_FLOW, PHONE_NUMBER_ID, received
from botkit.wire.signing import SIGNATURE_HEADER, sign

FLOW = CLINIC_FLOW
OFF_PATH = {"type": "text", "text": {"body": "no sé, ¿qué hago?"}}  # re-asked: the fallback
# (seconds into the run, POST /_fake/fail body): the provider fails some sends, then recovers
FAULTS = (
    (15.0, {"status": 503, "times": 6}),
    (30.0, {"status": 429, "times": 4, "retry_after": 1}),
)


class Load:
    """Posts signed webhooks to the bot and counts how they were answered."""

    def __init__(self, bot: httpx.AsyncClient, fake: httpx.AsyncClient, secret: str) -> None:
        self.bot, self.fake, self.secret = bot, fake, secret
        self.answers: Counter[int] = Counter()
        self.users = itertools.count()
        self.events = itertools.count()

    async def post(self, body: bytes, signature: str | None) -> None:
        """POST /webhook; the answer's status is counted."""
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers[SIGNATURE_HEADER] = signature
        answer = await self.bot.post("/webhook", content=body, headers=headers)
        self.answers[answer.status_code] += 1

    async def send(self, envelope: dict[str, Any], *, redeliver: bool = False) -> None:
        """Posts one event signed, and once more when the provider would redeliver it."""
        body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
        for _ in range(2 if redeliver else 1):
            await self.post(body, sign(self.secret, body))

    async def user(self) -> None:
        """A new user through the flow, with a human's pauses; one in ten strays once."""
        user = next(self.users)
        steps = list(FLOW)
        if random.random() < 0.1:
            steps.insert(2, OFF_PATH)
        for step in steps:
            await asyncio.sleep(random.uniform(0.5, 2.5))
            event = next(self.events)
            envelope = received(user, f"evt_load_{event}", f"wamid.load.{event}", step)
            await self.send(envelope, redeliver=random.random() < 0.03)

    async def users_until(self, start: float, deadline: float) -> None:
        """One user after another from `start` seconds on until the deadline."""
        await asyncio.sleep(start)
        while time.monotonic() < deadline:
            await self.user()

    async def statuses_until(self, deadline: float) -> None:
        """Every 2 s, `delivered` for what the bot sent since, and `read` for half of it."""
        seen = 0
        while time.monotonic() < deadline:
            await asyncio.sleep(2.0)
            sent = (await self.fake.get("/_fake/messages")).raise_for_status().json()
            for message in sent[seen:]:
                for status in ("delivered", "read")[: random.choice((1, 2))]:
                    await self.send(status_event(message, status))
            seen = len(sent)

    async def faults(self, started: float) -> None:
        """The provider's faults, each at its time."""
        for at, fault in FAULTS:
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            (await self.fake.post("/_fake/fail", json=fault)).raise_for_status()

    async def bad_requests_until(self, started: float, deadline: float) -> None:
        """From 40 s to 46 s, five posts a second signed with a secret rotated out (401);
        every 10 s, a signed body that is not a webhook (400)."""
        for tick in itertools.count(1):  # five ticks a second
            due = started + tick * 0.2
            if due > deadline - 5:
                return
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            body = f'{{"id": "evt_bad_{tick}"}}'.encode()
            if 200 <= tick < 230:
                await self.post(body, sign("whsec_rotated_out", body))
            if tick % 50 == 0:
                await self.post(b"not a webhook", sign(self.secret, b"not a webhook"))


def status_event(message: dict[str, Any], status: str) -> dict[str, Any]:
    """The provider's webhook of a delivery status of a message the bot sent."""
    return {
        "id": f"evt_status_{status}_{message['message_id']}",
        "type": f"whatsapp.message.{status}",
        "phone_number_id": message.get("phone_number_id") or PHONE_NUMBER_ID,
        "data": {
            "status": {
                "id": message["message_id"],
                "status": status,
                "timestamp": str(int(time.time())),
                "recipient_id": message["to"],
            }
        },
    }


async def run(args: argparse.Namespace) -> Counter[int]:
    """The load, for `args.seconds`; the answers' statuses."""
    started = time.monotonic()
    deadline = started + args.seconds
    async with (
        httpx.AsyncClient(base_url=args.bot, timeout=10.0) as bot,
        httpx.AsyncClient(base_url=args.fake, timeout=10.0) as fake,
    ):
        load = Load(bot, fake, args.secret)
        async with asyncio.TaskGroup() as group:
            for slot in range(args.slots):
                # the load ramps up over the first 10 s and down over the last quarter
                ramp = slot / args.slots
                group.create_task(load.users_until(10 * ramp, deadline - ramp * args.seconds / 4))
            group.create_task(load.statuses_until(deadline))
            group.create_task(load.faults(started))
            group.create_task(load.bad_requests_until(started, deadline))
    return load.answers


def main() -> None:
    """Runs the load and prints how many webhooks got which answer."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bot", required=True, help="the bot's base URL")
    parser.add_argument("--fake", required=True, help="the fake GoSendAPI's base URL")
    parser.add_argument("--secret", required=True, help="the webhook secret")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--slots", type=int, default=30, help="users at a time")
    answers = asyncio.run(run(parser.parse_args()))
    print("load: webhook answers", dict(sorted(answers.items())))


if __name__ == "__main__":
    main()
