"""The streaming tracking service: FastAPI over HTTP + WebSocket (see service/API.md)."""

from blurtrack.service.app import create_app
from blurtrack.service.config import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
