"""The demo catalog: the OTB-layout sequences of `--demo-dir` that the live page can stream
through a real session. One per service, on its state (service.state)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from pathlib import Path

import cv2

from blurtrack.engine.errors import DatasetError
from blurtrack.engine.otb import Sequence, find_sequences
from blurtrack.service.errors import ApiError, excerpt
from blurtrack.service.image_header import image_size
from blurtrack.service.schemas import DemoSequence

log = logging.getLogger(__name__)


class DemoCatalog:
    """The OTB-layout sequences under the demo folder, scanned when listed (the page lists them
    once when it loads); frames are served only for names found by a scan, never from a path
    the caller made up. A scan reads every sequence's files, so it runs in a thread, one at a
    time, and an unknown name triggers at most one rescan every RESCAN_MIN_S (a client asking
    for made-up names cannot keep the disk busy)."""

    RESCAN_MIN_S = 2.0

    def __init__(self, root: Path | None):
        self.root = root
        self._sequences: dict[str, Sequence] = {}
        self._entries: list[DemoSequence] = []
        self._lock = asyncio.Lock()
        self._scanned_at = -math.inf

    def scan(self) -> list[DemoSequence]:
        """Blocking: call it through `refresh` from the event loop."""
        if self.root is None:
            return []
        sequences = find_sequences(self.root)  # DatasetError when there are none
        entries = [entry for s in sequences if (entry := _describe(s)) is not None]
        self._sequences, self._entries = {s.name: s for s in sequences}, entries
        return entries

    async def refresh(self) -> list[DemoSequence]:
        async with self._lock:
            self._scanned_at = time.monotonic()
            return await asyncio.to_thread(self.scan)

    async def get(self, name: str) -> Sequence:
        if name not in self._sequences and self.root is not None and time.monotonic() - self._scanned_at >= self.RESCAN_MIN_S:
            with contextlib.suppress(DatasetError):
                await self.refresh()
        try:
            return self._sequences[name]
        except KeyError:
            raise ApiError(
                404, "unknown_sequence", f"no demo sequence {excerpt(name)}: GET /v1/demo/sequences lists them"
            ) from None


def _describe(sequence: Sequence) -> DemoSequence | None:
    first = next((p for p in sequence.frames if p is not None), None)
    box = sequence.gt_box(0)
    if first is None or box is None:
        log.warning("demo sequence %s skipped: it needs a first image and a first ground-truth box", sequence.name)
        return None
    with open(first, "rb") as f:
        size = image_size(f.read(256 * 1024))
    if size is None:  # a format whose header we do not read
        image = cv2.imread(str(first), cv2.IMREAD_COLOR)
        if image is None:
            return None
        size = (image.shape[1], image.shape[0])
    return DemoSequence(name=sequence.name, frames=len(sequence), width=size[0], height=size[1], first_box=tuple(box))
