"""Probes and metrics. /healthz and /readyz stay open (probes carry no key and reveal nothing);
/metrics needs the API key when one is set."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from blurtrack.service.api.deps import State, require_api_key
from blurtrack.service.schemas import Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up and its event loop answers."""
    return Health()


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(state: State) -> Response:
    """200 once the models are loaded (then sessions can be opened); 503 before, if loading failed, or once shutting down."""
    worker = state.worker
    if state.draining:
        return JSONResponse(Readiness(ready=False, detail="shutting down").model_dump(), status_code=503)
    if worker.pipeline is not None:
        # The bundle's folder stays out: this endpoint is open even when an API key is set.
        described = {k: v for k, v in worker.pipeline.describe().items() if k != "bundle_dir"}
        body = Readiness(ready=True, detail="models loaded", backend=described)
        return JSONResponse(body.model_dump())
    detail = f"loading failed: {worker.load_error}" if worker.load_error else "loading models"
    return JSONResponse(Readiness(ready=False, detail=detail).model_dump(), status_code=503)


@router.get("/metrics", dependencies=[Depends(require_api_key)], response_class=Response)
async def metrics(state: State) -> Response:
    """Prometheus text format."""
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)
