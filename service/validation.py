"""Typed validation of what callers send: the box, the `options` form field and the WebSocket
control messages. Everything is bounded (length, JSON depth, number range) before it is parsed,
every error says what to send instead, and no error quotes more than a short excerpt of the input.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from blurtrack.engine.geometry import Box
from blurtrack.service.errors import ApiError, excerpt
from blurtrack.service.schemas import SessionOptions

MAX_BOX_CHARS = 200  # "x,y,w,h" with generous decimals
MAX_OPTIONS_BYTES = 1024
MAX_CONTROL_BYTES = 1024  # a reinit or close message is well under 100 bytes
MAX_JSON_DEPTH = 4  # {"type": "reinit", "box": [..]} is 2 deep
MAX_COORD = 65535.0  # the largest side a JPEG can have; anything past it is not a box in a frame
MIN_SIDE = 1.0  # pixels: the tracker's crop is scaled by 1 / side

BOX_HELP = 'a box is four numbers "x,y,w,h": finite, in frame pixels (top-left corner), w and h at least 1'


# -- JSON, bounded ---------------------------------------------------------------------------


class JsonTooComplex(ValueError):
    pass


def _depth(text: str) -> int:
    """Deepest nesting of [] and {} outside strings (scanned before json.loads, which recurses)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def loads_bounded(text: str | bytes, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads within a size and a nesting depth; NaN and Infinity are refused.
    Raises JsonTooComplex (size or depth) or ValueError (not JSON)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if len(text) > max_bytes:
        raise JsonTooComplex(f"it is {len(text)} characters, over the limit of {max_bytes}")
    if _depth(text) > max_depth:
        raise JsonTooComplex(f"it is nested more than {max_depth} levels deep")
    return json.loads(text, parse_constant=_no_constants)


# -- boxes ------------------------------------------------------------------------------------

_Coord = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_COORD, le=MAX_COORD)]
_Side = Annotated[float, Field(allow_inf_nan=False, ge=MIN_SIDE, le=MAX_COORD)]


class BoxIn(BaseModel):
    model_config = ConfigDict(strict=True)  # no booleans or numeric strings inside a JSON list

    x: _Coord
    y: _Coord
    w: _Side
    h: _Side


def parse_box_input(value: Any) -> Box:
    """A box from the form field ("x,y,w,h") or a control message ([x, y, w, h]).
    Raises ApiError 400 invalid_box."""
    if isinstance(value, str):
        if len(value) > MAX_BOX_CHARS:
            raise ApiError(400, "invalid_box", f"{BOX_HELP}; got {len(value)} characters ({excerpt(value)})")
        parts: list[Any] = [p for p in value.replace(" ", ",").split(",") if p]
        try:
            parts = [float(p) for p in parts]
        except ValueError:
            raise ApiError(400, "invalid_box", f"{BOX_HELP}; got {excerpt(value)}") from None
    elif isinstance(value, list):
        parts = value
    else:
        raise ApiError(400, "invalid_box", f"{BOX_HELP} (a JSON list [x, y, w, h]); got {excerpt(value)}")
    if len(parts) != 4:
        raise ApiError(400, "invalid_box", f"{BOX_HELP}; got {len(parts)} values ({excerpt(value)})")
    try:
        box = BoxIn(**dict(zip("xywh", parts, strict=True)))
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]} {_box_problem(e)}" for e in exc.errors())
        raise ApiError(400, "invalid_box", f"{BOX_HELP} and within +-{MAX_COORD:g}; {problems}") from None
    return Box(box.x, box.y, box.w, box.h)


def _box_problem(error: ErrorDetails) -> str:
    if error["type"] == "finite_number":
        return "must be finite, not NaN or infinite"
    if error["type"] == "greater_than_equal" and error["loc"][0] in ("w", "h"):
        return f"is {error['input']:g}: width and height must be positive, at least {MIN_SIDE:g} pixel"
    if error["type"] in ("greater_than_equal", "less_than_equal"):
        return f"is {error['input']:g}: {error['msg'].lower()}"
    return "must be a number"


def check_box_in_frame(box: Box, width: int, height: int) -> Box:
    """The box must overlap the frame (it may stick out: a target entering the view)."""
    if box.x >= width or box.y >= height or box.x + box.w <= 0 or box.y + box.h <= 0:
        raise ApiError(
            400,
            "invalid_box",
            f"box {box.x:g},{box.y:g},{box.w:g},{box.h:g} lies outside the {width}x{height} frame; "
            "give x,y,w,h in frame pixels with the box overlapping the frame",
        )
    return box


def all_finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


# -- options -----------------------------------------------------------------------------------

OPTIONS_HELP = (
    'options must be a JSON object like {"deblur": "auto"} with keys backend (auto|mslite|onnxruntime) and deblur (on|off|auto)'
)


def parse_options_field(raw: str | None) -> SessionOptions:
    """The `options` form field. Raises ApiError 400 invalid_options."""
    if raw is None or not raw.strip():
        return SessionOptions()
    try:
        value = loads_bounded(raw, MAX_OPTIONS_BYTES)
        return SessionOptions.model_validate(value)
    except JsonTooComplex as exc:
        raise ApiError(400, "invalid_options", f"{OPTIONS_HELP}: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors()[:3])
        raise ApiError(400, "invalid_options", f"{OPTIONS_HELP}: {problems}") from None
    except ValueError as exc:  # not JSON
        raise ApiError(
            400, "invalid_options", f"{OPTIONS_HELP}: not JSON ({excerpt(str(exc), 60)}); got {excerpt(raw)}"
        ) from None


# -- WebSocket control messages ---------------------------------------------------------------

CONTROL_HELP = (
    "frames are binary messages (JPEG, PNG, WebP or BMP bytes); the only text messages are "
    '{"type":"reinit","box":[x,y,w,h]} and {"type":"close"}'
)


class ReinitMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["reinit"]
    box: Any  # checked by parse_box_input, for its own messages


class CloseMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["close"]


_control = TypeAdapter(Annotated[ReinitMessage | CloseMessage, Field(discriminator="type")])


def parse_control(text: str) -> tuple[Literal["close"], None] | tuple[Literal["reinit"], Box]:
    """A text message on the stream. Raises ApiError: invalid_message, or invalid_box for a
    reinit whose box is not a box."""
    try:
        message = _control.validate_python(loads_bounded(text, MAX_CONTROL_BYTES))
    except JsonTooComplex as exc:
        raise ApiError(400, "invalid_message", f"{CONTROL_HELP}; this message was refused: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise ApiError(400, "invalid_message", f"{CONTROL_HELP}; got {excerpt(text)} ({where}: {first['msg']})") from None
    except ValueError:
        raise ApiError(400, "invalid_message", f"{CONTROL_HELP}; got {excerpt(text)}, which is not JSON") from None
    if isinstance(message, CloseMessage):
        return "close", None
    try:
        return "reinit", parse_box_input(message.box)
    except ApiError as exc:
        raise ApiError(400, "invalid_box", f"reinit ignored: {exc.message}") from None
