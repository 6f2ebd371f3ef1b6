"""Choose a bundle's tracker hyper-parameters by grid search on held-out synthetic sequences.

The networks stay fixed; only the post-processing settings of engine.tracker (the size-change
penalty, the cosine window's weight, the box-size learning rate, the box-voting IoU and the aspect
ratio's learning rate) and the deblur policy's (blur threshold, rescue score, strength) vary.
Each setting runs the real pipeline over every sequence, and the settings are ranked by the mean
of precision@15 and success@0.6, the two numbers the product is judged on, then by AUC.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

from blurtrack.engine.manifest import DeblurConfig, Manifest, TrackerConfig
from blurtrack.engine.otb import Sequence
from blurtrack.models.evaluation.runner import evaluate, run_dataset

TRACKER_SETTINGS = (
    "penalty_k",
    "window_influence",
    "lr",
    "box_vote_iou",
    "aspect_lr",
    "template_update",
    "template_update_interval",
    "template_update_score",
)
# the deblur policy's (engine.manifest.DeblurConfig): crops whose blur score is below
# blur_threshold are deblurred, frames whose best tracker score is below rescue_score are tracked
# again deblurred, and strength blends the deblurred crop with the crop as it came
DEBLUR_SETTINGS = ("blur_threshold", "rescue_score", "strength")
TUNABLE = TRACKER_SETTINGS + DEBLUR_SETTINGS


def settings_grid(values: dict[str, Iterable[float]]) -> list[dict[str, float]]:
    """Every combination of the given values, e.g. {"lr": [0.3, 0.4], "penalty_k": [0.1]}."""
    unknown = set(values) - set(TUNABLE)
    if unknown:
        raise ValueError(f"cannot tune {sorted(unknown)}: tunable settings are {', '.join(TUNABLE)}")
    names = list(values)
    return [dict(zip(names, combo)) for combo in itertools.product(*(list(values[n]) for n in names))]


def objective(summary: dict[str, Any]) -> float:
    return 0.5 * ((summary["precision@15"] or 0.0) + (summary["success@0.6"] or 0.0))


def with_settings(manifest: Manifest, settings: dict[str, float]) -> tuple[TrackerConfig, DeblurConfig]:
    """The manifest's tracker settings and deblur policy with `settings` in place, validated (so a
    grid's 10.0 frames become the int the tracker counts in)."""
    tracker = {k: v for k, v in settings.items() if k in TRACKER_SETTINGS}
    policy = {k: v for k, v in settings.items() if k in DEBLUR_SETTINGS}
    return (
        TrackerConfig.model_validate({**manifest.tracker.model_dump(), **tracker}),
        DeblurConfig.model_validate({**manifest.deblur_policy.model_dump(), **policy}),
    )


def evaluate_settings(
    pipeline,
    sequences: list[Sequence],
    settings: dict[str, float],
    deblur: str | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Pooled metrics of the pipeline's trackers built with `settings` in place of the bundle's own."""
    tracker_config, policy = with_settings(pipeline.bundle.manifest, settings)

    def make_tracker():
        return pipeline.new_tracker(deblur=deblur, tracker_config=tracker_config, deblur_policy=policy)

    pooled = evaluate(run_dataset(make_tracker, sequences, on_frame), sequences)["pooled"]
    summary = {k: pooled[k] for k in ("scored_frames", "precision@15", "precision@20", "success@0.6", "auc", "deblurred_frames")}
    return {"settings": settings, **summary, "objective": round(objective(summary), 4)}


def tune(
    pipeline,
    sequences: list[Sequence],
    grid: list[dict[str, float]],
    deblur: str | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per setting, best first; ties go to the higher AUC, then to the earlier setting."""
    rows = [evaluate_settings(pipeline, sequences, s, deblur, on_frame) for s in grid]
    return sorted(rows, key=lambda r: (-r["objective"], -(r["auc"] or 0.0)))
