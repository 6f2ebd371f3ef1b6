"""Temporal robustness (OTB's TRE): each clip tracked from several start frames, not only its first.

A tracker that loses its target once scores every later frame of that run as a miss, so where on
a clip the loss happens decides its score, and a few clips give a noisy objective. Starting the
tracker again at evenly spread frames and pooling every run's frames averages that chance out.
"""

from __future__ import annotations

from blurtrack.engine.otb import Sequence

#: a start this close to the clip's end is dropped: a run of a few frames measures nothing
MIN_SEGMENT_FRAMES = 20


def start_frames(sequence: Sequence, starts: int) -> list[int]:
    """`starts` start frames spread evenly over the clip, the first at frame 0; each moves forward to
    the next frame with an image and a ground-truth box (the tracker initialises there). A start
    that lands within MIN_SEGMENT_FRAMES of the end, or on an earlier start, is dropped."""
    if starts < 1:
        raise ValueError(f"starts must be 1 or more, got {starts}")
    length = len(sequence)
    chosen: list[int] = []
    for i in range(starts):
        index = round(i * length / starts)
        while index < length and (sequence.frames[index] is None or sequence.gt_box(index) is None):
            index += 1
        if i > 0 and length - index < MIN_SEGMENT_FRAMES:
            continue
        if index < length and index not in chosen:
            chosen.append(index)
    return chosen


def temporal_segments(sequences: list[Sequence], starts: int) -> list[Sequence]:
    """Every sequence from each of its start frames; with starts=1 the sequences as they are."""
    if starts == 1:
        return list(sequences)
    return [seq if index == 0 else seq.starting_at(index) for seq in sequences for index in start_frames(seq, starts)]
