"""A robot's control loop on top of the client library (the smallest useful example).

    python -m clients.example --server http://127.0.0.1:8000 VIDEO_OR_CAMERA --box x,y,w,h

Each frame goes to the server, the box comes back, and the robot turns toward the target's
centre. Lockstep (send, await the box, act) keeps the control loop simple; for a fast camera
on a slow link use `client.track(..., mode="realtime")` instead.
"""

from __future__ import annotations

import argparse
import asyncio

import numpy as np

from blurtrack.clients.client import BlurtrackClient, Result
from blurtrack.clients.sources import open_source


def steering(result: Result, frame_width: int) -> float:
    """-1 (turn left) .. +1 (turn right): how far the target's centre is from the image centre."""
    x, _, w, _ = result.box
    return max(-1.0, min(1.0, ((x + w / 2) - frame_width / 2) / (frame_width / 2)))


async def follow(server: str, source: str, box: str, api_key: str | None, max_frames: int | None) -> None:
    frames = open_source(source, max_frames=max_frames).frames
    first = next(frames)
    assert isinstance(first, np.ndarray)  # open_source decodes unless encoded=True
    width = first.shape[1]
    async with BlurtrackClient(server, api_key=api_key) as client:
        session = await client.open_session(first, box)
        async with client.stream(session) as stream:
            for frame in frames:
                await stream.send_frame(frame)
                message = await stream.receive()
                if isinstance(message, Result):
                    turn = steering(message, width) if message.state == "tracking" else 0.0
                    print(f"seq {message.seq:4d} {message.state:8s} turn {turn:+.2f} ({message.rtt_ms:.1f} ms round trip)")
                else:
                    print(f"frame skipped: {message.code}: {message.message}")
            await stream.close()  # ends the session on the server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="video file, image folder or camera index")
    parser.add_argument("--box", required=True, help="x,y,w,h of the target in the first frame")
    parser.add_argument("--server", default="http://127.0.0.1:8000")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--max-frames", type=int, default=None)
    args = parser.parse_args()
    asyncio.run(follow(args.server, args.source, args.box, args.api_key, args.max_frames))


if __name__ == "__main__":
    main()
