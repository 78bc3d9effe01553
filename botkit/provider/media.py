"""Media from local files: uploaded once per (business number, content), the id reused while
the provider keeps it.

The provider deletes uploaded media after a while (30 days on WhatsApp), so a cached id is
reused only while it is younger than `max_age` (29 days by default); a send the provider
refuses because the id is gone uploads the file again, once (see botkit.runtime.outbox).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path

from botkit.config import DAY, DEFAULT_MEDIA_MAX_AGE_DAYS
from botkit.exceptions import MediaError
from botkit.provider.sender import Sender
from botkit.store.base import MediaCache
from botkit.types import JSON, JSONObject
from botkit.wire.messages import FILE_KEY

DEFAULT_MAX_AGE = DEFAULT_MEDIA_MAX_AGE_DAYS * DAY


@dataclass(frozen=True, slots=True)
class Resolved:
    """A payload ready to send, and the uploaded media id it carries (None: no local file)."""

    payload: JSON
    media_id: str | None = None


class MediaUploads:
    """Turns a payload's local file into a media id, uploading each new content once.

    Known ids are kept in the store (they survive restarts); sends of the same new file that
    happen at once share one upload.
    """

    def __init__(
        self, cache: MediaCache, sender: Sender, *, max_age: float = DEFAULT_MAX_AGE
    ) -> None:
        self.cache = cache
        self.sender = sender
        self.max_age = max_age
        self._uploading: dict[tuple[str, str], asyncio.Future[str]] = {}

    async def resolve(self, phone_number_id: str, payload: JSON) -> Resolved:
        """The payload ready to send: a local file replaced by its media id; others unchanged."""
        file = _file(payload)
        if file is None:
            return Resolved(payload)
        return _with_id(payload, await self.media_id(phone_number_id, file))

    def with_id(self, payload: JSON, media_id: str) -> Resolved:
        """`payload` sent with `media_id` (an earlier attempt's): no cache, no upload."""
        return Resolved(payload) if _file(payload) is None else _with_id(payload, media_id)

    async def upload_again(self, phone_number_id: str, payload: JSON, gone: str) -> Resolved:
        """After the provider refused `gone` (a media id it no longer has): forgets it and
        resolves `payload` anew, uploading its file again."""
        file = _file(payload)
        if file is not None:
            await self.cache.forget(phone_number_id, str(file["sha256"]), gone)
        return await self.resolve(phone_number_id, payload)

    async def media_id(self, phone_number_id: str, file: JSONObject) -> str:
        """The id of `file`'s content on `phone_number_id`, uploading it if it is new."""
        key = (phone_number_id, str(file["sha256"]))
        pending = self._uploading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._uploading[key] = future
        try:
            found = await self._find_or_upload(phone_number_id, file)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: waiters, if any, get it too
            raise
        else:
            future.set_result(found)
            return found
        finally:
            del self._uploading[key]

    async def _find_or_upload(self, phone_number_id: str, file: JSONObject) -> str:
        sha256 = str(file["sha256"])
        known = await self.cache.get(phone_number_id, sha256, self.max_age)
        if known is not None:
            return known
        content = await asyncio.to_thread(_read, str(file["path"]), sha256)
        media_id = await self.sender.upload_media(
            phone_number_id=phone_number_id,
            content=content,
            mime_type=str(file["mime_type"]),
            filename=Path(str(file["path"])).name,
        )
        await self.cache.put(phone_number_id, sha256, media_id)
        return media_id


def _file(payload: JSON) -> JSONObject | None:
    """The local file a payload names (None: it names none)."""
    if isinstance(payload, dict):
        file = payload.get(FILE_KEY)
        if isinstance(file, dict):
            return file
    return None


def _with_id(payload: JSON, media_id: str) -> Resolved:
    """`payload` (which names a local file) with that file replaced by `media_id`."""
    assert isinstance(payload, dict)
    resolved = {key: value for key, value in payload.items() if key != FILE_KEY}
    resolved["id"] = media_id
    return Resolved(resolved, media_id)


def _read(path: str, sha256: str) -> bytes:
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise MediaError(f"cannot read {path!r}: {exc.strerror}") from exc
    if hashlib.sha256(content).hexdigest() != sha256:
        raise MediaError(f"{path!r} changed since the message was built; build it again")
    return content
