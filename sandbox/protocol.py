"""The wire format between the host and a sandbox worker (imports nothing from the project).

One JSON object per line, both ways, over the worker's stdin/stdout (a pipe for the local
backend, the attached socket for a Docker container). Host → worker: ``{"id", "job", "limits",
"timeout_s", "output_cap"}`` or ``{"quit": true}``. Worker → host: ``{"hello": {...}}`` once, then
one ``{"id", "records", "stderr", "timed_out", "capped", "returncode", "seconds"}`` per job, where
``records`` is the child's own output, JSON lines as it wrote them (``parse_records``), or
``{"fatal": "..."}`` when it cannot start. Docker multiplexes the attached stdout and stderr into
frames with an 8-byte header; ``DockerStreamDemux`` takes them apart.
"""

import json
import select
import struct
import time

MAX_LINE = 64 * 1024 * 1024


class ProtocolError(ValueError):
    pass


def encode(message: dict) -> bytes:
    return (json.dumps(message, separators=(",", ":")) + "\n").encode()


class LineDecoder:
    """Bytes in, complete JSON messages out."""

    def __init__(self):
        self.buffer = bytearray()

    def feed(self, chunk: bytes) -> list:
        self.buffer += chunk
        messages = []
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                if len(self.buffer) > MAX_LINE:
                    raise ProtocolError(f"a worker message exceeded {MAX_LINE} bytes without a newline")
                return messages
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 1]
            if line.strip():
                try:
                    messages.append(json.loads(line))
                except ValueError as exc:
                    raise ProtocolError(f"a worker sent a line that is not JSON: {line[:120]!r} ({exc})") from None


MAX_RECORD_DEPTH = 128  # the child's encoder stops at 100 levels; deeper was forged


def parse_records(text: str) -> list[dict]:
    """The child's JSON lines; a line that is not a JSON object, or nests deeper than
    ``MAX_RECORD_DEPTH`` (a forged record that would exhaust the host's recursion when it is
    decoded or compared), becomes ``{"garbage": True}``."""
    records = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            record = None
        if line.count("[") + line.count("{") > MAX_RECORD_DEPTH and too_deep(record, MAX_RECORD_DEPTH):
            record = None
        records.append(record if isinstance(record, dict) else {"garbage": True})
    return records


def too_deep(value, limit: int) -> bool:
    """Whether lists and dicts nest more than ``limit`` levels (walked without recursion)."""
    frontier = [(value, 1)]
    while frontier:
        node, depth = frontier.pop()
        if isinstance(node, (list, dict)):
            if depth > limit:
                return True
            frontier.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return False


STDOUT, STDERR = 1, 2


class DockerStreamDemux:
    """Docker's attach stream (tty off): frames of [stream type, 0, 0, 0, big-endian size] + data."""

    def __init__(self):
        self.buffer = bytearray()

    def feed(self, chunk: bytes) -> list[tuple[int, bytes]]:
        self.buffer += chunk
        frames = []
        while len(self.buffer) >= 8:
            stream, size = struct.unpack(">BxxxL", bytes(self.buffer[:8]))
            if stream not in (0, STDOUT, STDERR):
                raise ProtocolError(f"unexpected stream type {stream} in the attach stream")
            if len(self.buffer) < 8 + size:
                break
            frames.append((stream, bytes(self.buffer[8 : 8 + size])))
            del self.buffer[: 8 + size]
        return frames


def docker_frame(stream: int, data: bytes) -> bytes:
    """One multiplexed frame (what the engine sends; used by tests)."""
    return struct.pack(">BxxxL", stream, len(data)) + data


def first_message(worker, timeout_s: float) -> dict | None:
    """The first message a just-started worker sends (its hello), or None if it sent none in time.

    ``worker`` has ``fileno()`` and ``read_messages()`` (None once the stream has ended)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([worker.fileno()], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return None
        messages = worker.read_messages()
        if messages is None:
            return None
        if messages:
            return messages[0]
    return None
