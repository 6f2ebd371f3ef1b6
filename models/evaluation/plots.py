"""Benchmark plots (matplotlib, drawn off-screen): precision and success curves per data set, and a
speed / accuracy scatter. matplotlib is imported here only, so the engine runs without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blurtrack.engine.errors import BackendUnavailableError


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise BackendUnavailableError("the benchmark plots need matplotlib: pip install 'blurtrack[bench]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _style(row: dict[str, Any], index: int, reference: str) -> dict[str, Any]:
    # Our bundles solid, peers dashed: the two families read apart at a glance.
    ours = row["kind"] == "bundle"
    return {"linestyle": "-" if ours else "--", "linewidth": 2.4 if row["name"] == reference else 1.5, "color": f"C{index % 10}"}


def plot_curves(rows: list[dict[str, Any]], data_name: str, title: str, reference: str, out: Path) -> Path:
    """One PNG, two panels: precision (centre error 0..50 px) and success (IoU 0..1)."""
    plt = _pyplot()
    fig, (ax_p, ax_s) = plt.subplots(1, 2, figsize=(11, 4.4))
    for index, row in enumerate(rows):
        result = row["results"].get(data_name)
        if result is None:
            continue
        pooled, curves = result["pooled"], result["curves"]
        style = _style(row, index, reference)
        p = curves["precision"]
        ax_p.plot(p["thresholds_px"], p["values"], label=f"{row['name']} [{pooled['precision@20']:.3f}]", **style)
        s = curves["success"]
        ax_s.plot(s["thresholds_iou"], s["values"], label=f"{row['name']} [{pooled['auc']:.3f}]", **style)
    ax_p.axvline(15, color="grey", linewidth=0.8, linestyle=":")
    ax_p.set(
        xlabel="location error threshold (px)", ylabel="precision", xlim=(0, 50), ylim=(0, 1.01), title=f"Precision — {title}"
    )
    ax_s.axvline(0.6, color="grey", linewidth=0.8, linestyle=":")
    ax_s.set(xlabel="overlap (IoU) threshold", ylabel="success rate", xlim=(0, 1), ylim=(0, 1.01), title=f"Success — {title}")
    ax_p.legend(title="tracker [P@20]", fontsize=8, loc="best")
    ax_s.legend(title="tracker [AUC]", fontsize=8, loc="best")
    for ax in (ax_p, ax_s):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_speed_accuracy(rows: list[dict[str, Any]], data_names: list[str], reference: str, out: Path) -> Path:
    """Success@0.6 against FPS (log axis), one marker shape per data set, 30 FPS marked."""
    plt = _pyplot()
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(7.5, 5))
    markers = ["o", "s", "^", "D", "v"]
    for index, row in enumerate(rows):
        for d, data_name in enumerate(data_names):
            result = row["results"].get(data_name)
            if result is None or not result["pooled"]["fps"]:
                continue
            pooled = result["pooled"]
            ax.scatter(
                pooled["fps"],
                pooled["success@0.6"],
                marker=markers[d % len(markers)],
                color=f"C{index % 10}",
                s=60,
                label=row["name"] if d == 0 else None,
                edgecolors="black" if row["name"] == reference else "none",
            )
    for d, data_name in enumerate(data_names):
        ax.scatter([], [], marker=markers[d % len(markers)], color="grey", label=f"data: {data_name}")
    ax.axvline(30, color="grey", linewidth=0.8, linestyle=":")
    ax.text(30, 0.02, " 30 FPS", color="grey", fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([t for t in (1, 2, 5, 10, 20, 30, 50, 100, 200, 500, 1000, 2000, 5000)]))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(
        xlabel="frames per second (init + track only, same run)", ylabel="success@0.6", ylim=(0, 1.02), title="Speed and accuracy"
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
