"""What a robot installs to use a blurtrack server: an async client library and the
`blurtrack-client` command. Depends on httpx, websockets, numpy and OpenCV only (not the engine)."""

from blurtrack.clients.client import BlurtrackClient, Reconnected, Result, ServerError, StreamError, StreamLost, TrackStream

__all__ = ["BlurtrackClient", "Reconnected", "Result", "ServerError", "StreamError", "StreamLost", "TrackStream"]
