"""Media from local files: uploaded once per (business number, content), the media id reused."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from botkit.exceptions import MediaError
from botkit.provider.sender import Sender
from botkit.store.base import Store
from botkit.types import JSON, JSONObject
from botkit.wire.messages import FILE_KEY


class MediaUploads:
    """Turns a payload's local file into a media id, uploading each new content once.

    Known ids are kept in the store (they survive restarts); sends of the same new file that
    happen at once share one upload.
    """

    def __init__(self, store: Store, sender: Sender) -> None:
        self.store = store
        self.sender = sender
        self._uploading: dict[tuple[str, str], asyncio.Future[str]] = {}

    async def resolve(self, phone_number_id: str, payload: JSON) -> JSON:
        """The payload ready to send: a local file replaced by its media id; others unchanged."""
        if not isinstance(payload, dict) or not isinstance(payload.get(FILE_KEY), dict):
            return payload
        file: JSONObject = payload[FILE_KEY]  # type: ignore[assignment]
        media_id = await self.media_id(phone_number_id, file)
        resolved = {key: value for key, value in payload.items() if key != FILE_KEY}
        resolved["id"] = media_id
        return resolved

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
        known = await self.store.media_id(phone_number_id, sha256)
        if known is not None:
            return known
        content = await asyncio.to_thread(_read, str(file["path"]), sha256)
        media_id = await self.sender.upload_media(
            phone_number_id=phone_number_id,
            content=content,
            mime_type=str(file["mime_type"]),
            filename=Path(str(file["path"])).name,
        )
        await self.store.save_media_id(phone_number_id, sha256, media_id)
        return media_id


def _read(path: str, sha256: str) -> bytes:
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise MediaError(f"cannot read {path!r}: {exc.strerror}") from exc
    if hashlib.sha256(content).hexdigest() != sha256:
        raise MediaError(f"{path!r} changed since the message was built; build it again")
    return content
