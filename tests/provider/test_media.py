"""Media from local files: uploaded once per (business number, content), then sent by id."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from botkit import (
    Bot,
    Context,
    Conversation,
    Image,
    MediaError,
    MessageError,
    Simulator,
    State,
    Text,
    on,
)
from botkit.wire.messages import FILE_KEY

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def photo(tmp_path: Path, name: str = "menu.png", content: bytes = PNG) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def gallery(files: dict[str, Path]) -> Bot:
    class Gallery(Conversation):
        idle = State(initial=True)

        @on.text()
        async def show(self, ctx: Context) -> None:
            wanted = (ctx.text or "").split()
            for name in wanted:
                if name == "link":
                    await ctx.send(Image(link="https://example.com/menu.png"))
                else:
                    await ctx.send(Image.from_file(files[name], caption=name))
            await ctx.send(Text("listo"))

    return Bot(Gallery)


def uploads(sim: Simulator) -> list[object]:
    return [r for r in sim.fake.requests if r.path.endswith("/media")]


def test_from_file_hashes_the_content_and_guesses_the_type(tmp_path: Path) -> None:
    image = Image.from_file(photo(tmp_path), caption="El menú")
    file = image.payload()[FILE_KEY]
    assert file["mime_type"] == "image/png"  # type: ignore[index]
    assert len(file["sha256"]) == 64  # type: ignore[index,arg-type]
    assert image.payload()["caption"] == "El menú"


def test_from_file_refuses_what_it_cannot_read_or_type(tmp_path: Path) -> None:
    with pytest.raises(MessageError, match="cannot read"):
        Image.from_file(tmp_path / "missing.png")
    odd = photo(tmp_path, "blob.unknownext")
    with pytest.raises(MessageError, match="mime_type"):
        Image.from_file(odd)
    assert (
        Image.from_file(odd, mime_type="image/png").payload()[FILE_KEY]["mime_type"] == "image/png"
    )  # type: ignore[index]


async def test_a_file_is_uploaded_once_and_every_send_uses_its_id(tmp_path: Path) -> None:
    files = {"menu": photo(tmp_path)}
    async with Simulator(gallery(files), database=tmp_path / "g.db") as sim:
        ana, beto = sim.user("5491140000001"), sim.user("5491140000002")
        await ana.says("menu")
        await beto.says("menu menu")
        assert len(uploads(sim)) == 1
        sent = [m for m in sim.sent if m.type == "image"]
        assert len(sent) == 3
        ids = {m.body["image"]["id"] for m in sent}  # type: ignore[index,call-overload]
        assert len(ids) == 1
        assert all(FILE_KEY not in m.body["image"] for m in sent)  # type: ignore[operator]
    # the id is remembered in the store: a restart does not upload again
    async with Simulator(gallery(files), database=tmp_path / "g.db") as sim:
        await sim.user("5491140000003").says("menu")
        assert uploads(sim) == []


async def test_concurrent_sends_of_a_new_file_share_one_upload(tmp_path: Path) -> None:
    files = {"menu": photo(tmp_path)}
    async with Simulator(gallery(files)) as sim:
        users = [f"54911400001{n:02d}" for n in range(20)]
        deliveries = await asyncio.gather(
            *(
                sim.fake.receive(wa_id=u, message={"type": "text", "text": {"body": "menu"}})
                for u in users
            )
        )
        assert all(d.status_code == 200 for d in deliveries)
        await sim.settle()
        assert len(uploads(sim)) == 1
        assert len([m for m in sim.sent if m.type == "image"]) == 20


async def test_other_content_is_another_upload_and_links_pass_through(tmp_path: Path) -> None:
    files = {"menu": photo(tmp_path), "promo": photo(tmp_path, "promo.png", PNG + b"promo")}
    async with Simulator(gallery(files)) as sim:
        juan = sim.user("5491140123456")
        await juan.says("menu promo link")
        assert len(uploads(sim)) == 2
        link = [m for m in sim.sent if m.type == "image"][-1]
        assert link.body["image"] == {"link": "https://example.com/menu.png"}


async def test_a_file_changed_after_the_message_was_built_is_not_sent(tmp_path: Path) -> None:
    path = photo(tmp_path)
    image = Image.from_file(path)

    class Sender(Conversation):
        idle = State(initial=True)

        @on.text()
        async def show(self, ctx: Context) -> None:
            path.write_bytes(PNG + b"edited")  # after the hash, before the upload
            await ctx.send(image)

    async with Simulator(Bot(Sender)) as sim:
        await sim.user("5491140123456").says("hola")
        [row] = await sim.outbox()
        assert row.status == "failed"
        assert row.error is not None and "changed since" in row.error
        assert uploads(sim) == []
    assert issubclass(MediaError, Exception)


# -- the provider deletes uploads: ids are reused only while it keeps them --------------------

DAY = 24 * 3600


def image_keys(sim: Simulator) -> list[tuple[int, str | None, str]]:
    """Every image send the provider got: (status, Idempotency-Key, media id)."""
    found = []
    for request in sim.fake.requests:
        body = json.loads(request.body) if request.path.endswith("/messages") else {}
        if body.get("type") == "image":
            key = request.headers.get("idempotency-key")
            found.append((request.status, key, str(body["image"]["id"])))
    return found


async def test_a_media_id_older_than_its_max_age_is_not_reused(tmp_path: Path) -> None:
    files = {"menu": photo(tmp_path)}
    async with Simulator(gallery(files)) as sim:
        ana = sim.user("5491140000001")
        await ana.says("menu")
        await sim.advance(seconds=28 * DAY)
        await ana.says("menu")
        assert len(uploads(sim)) == 1  # 28 days old: still the provider's
        await sim.advance(seconds=2 * DAY)
        await ana.says("menu")  # 30 days: past botkit's 29, uploaded again before sending
        assert len(uploads(sim)) == 2
        ids = [media_id for _, _, media_id in image_keys(sim)]
        assert ids[0] == ids[1] != ids[2]
        assert [status for status, _, _ in image_keys(sim)] == [200, 200, 200]


async def test_a_send_refused_because_the_media_is_gone_uploads_again_once(
    tmp_path: Path,
) -> None:
    files = {"menu": photo(tmp_path)}
    async with Simulator(gallery(files)) as sim:
        sim.fake.media_ttl = 3 * DAY  # this provider deletes uploads sooner than botkit thinks
        ana = sim.user("5491140000001")
        await ana.says("menu")
        await sim.advance(seconds=5 * DAY)
        await ana.says("menu")
        sends = image_keys(sim)
        assert [status for status, _, _ in sends] == [200, 404, 200]
        first, refused, again = sends
        assert refused[2] == first[2] != again[2]  # the old id, then a new upload's
        assert refused[1] != again[1]  # another body needs another Idempotency-Key
        assert len(uploads(sim)) == 2
        rows = [row for row in await sim.outbox() if row.type == "image"]
        assert [row.status for row in rows] == ["sent", "sent"]
        assert len([m for m in sim.sent if m.type == "image"]) == 2  # each image once


async def test_a_media_id_refused_again_after_a_new_upload_fails_the_send(tmp_path: Path) -> None:
    files = {"menu": photo(tmp_path)}
    async with Simulator(gallery(files)) as sim:
        sim.fake.media_ttl = 0  # every upload is gone at once: never a loop of uploads
        await sim.user("5491140000001").says("menu")
        assert [status for status, _, _ in image_keys(sim)] == [404, 404]
        assert len(uploads(sim)) == 2
        [row] = [row for row in await sim.outbox() if row.type == "image"]
        assert row.status == "failed"
        assert row.error is not None and "MEDIA_NOT_FOUND" in row.error


async def test_a_retried_send_goes_with_the_media_of_its_first_attempt(tmp_path: Path) -> None:
    """A send whose first attempt may have gone out is retried with the same body under the
    same key, even if its media id has meanwhile grown too old to pick for a new send (a new
    upload would make another body under that key, which the provider refuses)."""
    files = {"menu": photo(tmp_path)}
    async with Simulator(gallery(files)) as sim:
        ana = sim.user("5491140000001")
        await ana.says("menu")
        await sim.advance(seconds=29 * DAY - 0.2)  # just short of botkit's 29-day max age
        sim.fail_next(503)  # the image's first attempt: its outcome unknown to the bot
        await ana.says("menu")  # retried after its backoff (half a second or more): past it
        sends = image_keys(sim)
        assert [status for status, _, _ in sends] == [200, 503, 200]
        _, failed, retried = sends
        assert retried == (200, failed[1], sends[0][2])  # same key, same (first) upload
        assert len(uploads(sim)) == 1
        rows = [row for row in await sim.outbox() if row.type == "image"]
        assert [(row.status, row.attempts) for row in rows] == [("sent", 1), ("sent", 2)]
        await ana.says("menu")  # a new send: that upload is now too old to pick, so uploaded
        assert len(uploads(sim)) == 2
