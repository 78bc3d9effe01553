"""Large webhook bodies decoded in a child process, so that none holds the event loop.

Decoding JSON is one C call that holds the interpreter's lock from the first byte to the last
(orjson: 10-35 ms for a 1 MiB body of the worst shapes on the development machine, whatever
thread it runs in), and so are a collection of what it built and freeing it. A body above
`LARGE` is therefore sent to a child process (`python -m botkit.web.decoder`) that decodes
and parses it with the same code as the web process (botkit.wire.events.parse_body), and
answers with the body's inbox rows, their envelopes already encoded, in frames of `ROWS`
rows; a thread of this process reads them, each frame a short call, so that the loop runs
between any two (bench/parse.py --loop). A body it refuses comes back as the PayloadError's
message: the answer is the same 400 as for a small body.

One child per web process, started at the first large body (most deployments never see
one), one body at a time; a child that dies or answers nonsense is replaced, and the body
then fails as unavailable (503: the provider delivers it again). It exits with its parent
(end of its input).
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import struct
import subprocess
import sys
import threading
from typing import IO, Any

from botkit.exceptions import PayloadError
from botkit.runtime.ingest import new_event
from botkit.store.base import NewEvent, envelope_json
from botkit.wire.events import parse_body

LARGE = 64 * 1024  # bytes of a body decoded apart (below: on the loop, well under a ms a KB)
ROWS = 200  # rows a frame carries
_HEADER = struct.Struct("!I")  # a frame's length
_ROWS, _REFUSED, _DONE = b"r", b"e", b"d"  # a frame's first byte: what it carries


class DecoderUnavailable(Exception):
    """The child process failed (the body was not decoded; the provider may deliver it again)."""


class BodyDecoder:
    """Decodes large bodies in a child process; one body at a time."""

    def __init__(self) -> None:
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # one body at a time through the child's pipes

    async def rows(self, body: bytes) -> list[NewEvent]:
        """The body's inbox rows (envelopes encoded); PayloadError when parse_body refuses
        it; DecoderUnavailable when the child fails."""
        return await asyncio.to_thread(self._rows, body)

    async def release(self, rows: list[NewEvent]) -> None:
        """Lets go of a body's rows in a thread, one at a time (freeing ten thousand at once
        is one C call: 3-5 ms holding the loop)."""
        await asyncio.to_thread(_drop, rows)

    def close(self) -> None:
        """Ends the child process (at shutdown)."""
        with self._lock:
            self._stop()

    def _rows(self, body: bytes) -> list[NewEvent]:
        with self._lock:
            child = self._started()
            try:
                assert child.stdin is not None and child.stdout is not None
                _write(child.stdin, body)
                return _read_answer(child.stdout)
            except PayloadError:  # the body's fault (a ValueError too): the child is fine
                raise
            except (OSError, EOFError, ValueError, pickle.UnpicklingError, struct.error) as exc:
                self._stop()
                raise DecoderUnavailable(f"the body decoder process failed: {exc}") from exc

    def _started(self) -> subprocess.Popen[bytes]:
        if self._child is not None and self._child.poll() is not None:
            self._stop()  # it died since the last body: its pipes are closed with it
        if self._child is None:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "botkit.web.decoder"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        return self._child

    def _stop(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # a pipe to a dead child may not flush
                    stream.close()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _drop(rows: list[NewEvent]) -> None:
    while rows:
        rows.pop()


def _read_answer(stream: IO[bytes]) -> list[NewEvent]:
    """The frames of one answer: rows until done, or the refusal."""
    found: list[NewEvent] = []
    while True:
        frame = _read(stream)
        kind, payload = frame[:1], frame[1:]
        if kind == _DONE:
            return found
        if kind == _REFUSED:
            raise PayloadError(payload.decode())
        if kind != _ROWS:
            raise ValueError(f"an unknown frame {kind!r}")
        found += [NewEvent(*row) for row in pickle.loads(payload)]  # frames of our own child


def _write(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _read(stream: IO[bytes]) -> bytes:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the other end closed the pipe")
    (size,) = _HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError("the other end closed the pipe mid-frame")
    return payload


def _answer(body: bytes, out: IO[bytes]) -> None:
    """The child's answer to one body."""
    try:
        events = parse_body(body)
        rows: list[tuple[Any, ...]] = []
        for event in events:
            row = new_event(event)
            rows.append(
                (row.event_id, row.message_id, row.kind, row.phone_number_id, row.wa_id,
                 envelope_json(row))
            )  # fmt: skip
    except PayloadError as exc:
        _write(out, _REFUSED + str(exc).encode())
        return
    for start in range(0, len(rows), ROWS):
        _write(out, _ROWS + pickle.dumps(rows[start : start + ROWS], pickle.HIGHEST_PROTOCOL))
    _write(out, _DONE)


def main() -> None:
    """The child: answers bodies read from stdin until it closes."""
    source, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            body = _read(source)
        except EOFError:
            return
        _answer(body, out)


if __name__ == "__main__":
    main()


__all__ = ["LARGE", "BodyDecoder", "DecoderUnavailable"]
