"""Running the app under uvicorn: in the foreground (`blurtrack serve`) or in a background thread
on a free loopback port (tests, the load benchmark, demos)."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import cast

import uvicorn
from fastapi import FastAPI

from blurtrack.service.app import create_app, drain
from blurtrack.service.config import ServiceSettings


def uvicorn_config(settings: ServiceSettings) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        lifespan="on",
        ws_max_size=settings.ws_max_message_bytes,
        # JPEG/PNG frames do not compress; permessage-deflate only burns CPU on both ends
        # (measured: 4 ms of zlib per 640x480 frame on the client, more than the tracker itself).
        ws_per_message_deflate=False,
        # Frames and results flow all the time; pings only find dead peers on idle streams.
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        timeout_graceful_shutdown=5,
        # A backstop for what the app never sees (idle sockets that send no request): past it
        # uvicorn answers a plain-text 503. The app's own cap (max_connections) answers JSON first.
        limit_concurrency=settings.max_connections + 32,
        proxy_headers=True,
    )


class Server(uvicorn.Server):
    """uvicorn's server with the app's drain as the first step of shutdown: left to itself,
    uvicorn closes every stream at once with 1012 and no word, and only then tells the app."""

    async def shutdown(self, sockets=None) -> None:
        if not self.force_exit:
            await drain(cast(FastAPI, self.config.app).state.service)
        await super().shutdown(sockets)


def serve(settings: ServiceSettings) -> None:
    """Serve in the foreground until SIGINT/SIGTERM (both shut down gracefully: streams are
    closed, then sessions end). uvicorn re-raises the signal once it has shut down; Ctrl-C then
    ends here quietly, SIGTERM ends the process the default way."""
    try:
        Server(uvicorn_config(settings)).run()
    except KeyboardInterrupt:
        pass


class BackgroundServer:
    """A real server on 127.0.0.1, a free port, in a daemon thread.

    with BackgroundServer(settings) as server:
        server.url          # http://127.0.0.1:PORT
        server.app          # the FastAPI app (its state, for assertions)
    """

    def __init__(self, settings: ServiceSettings, ready_timeout_s: float = 60.0, port: int = 0):
        """`port` 0 takes a free one; a given port lets a test restart a server where clients expect it."""
        self.settings = settings.model_copy(update={"host": "127.0.0.1"})
        self.ready_timeout_s = ready_timeout_s
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self.port = self._socket.getsockname()[1]
        config = uvicorn_config(self.settings.model_copy(update={"port": self.port}))
        self.app = config.app
        self.server = Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True, name="blurtrack-server"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + self.ready_timeout_s
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server thread exited during start-up; see its log")
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not start")
            time.sleep(0.02)
        if wait_ready:
            self.wait_ready(deadline)
        return self

    def wait_ready(self, deadline: float) -> dict:
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=5) as response:
                    return json.load(response)
            except urllib.error.HTTPError as exc:
                body = json.load(exc)
                if "failed" in body.get("detail", "") or time.monotonic() > deadline:
                    raise RuntimeError(f"the server is not ready: {body.get('detail')}") from exc
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
