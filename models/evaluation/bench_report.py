"""Write what `blurtrack bench` measured: results.json, results.md (tables + plots), box files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from blurtrack.engine.otb import write_boxes
from blurtrack.models.evaluation import plots
from blurtrack.models.evaluation.tables import markdown_table

STAGES = ("crop", "deblur", "track", "post", "total")


def _fmt(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def accuracy_table(rows: list[dict[str, Any]], data_name: str, reference: str) -> str:
    header = ["tracker", "P@15", "P@20", "S@0.6", "AUC", "FPS", f"speed vs {reference}", "lost frames"]
    body = []
    for row in rows:
        result = row["results"].get(data_name)
        if result is None:
            body.append([row["name"], *(["–"] * 7)])
            continue
        p = result["pooled"]
        ratio = p.get("speed_ratio")
        body.append(
            [
                row["name"],
                _fmt(p["precision@15"]),
                _fmt(p["precision@20"]),
                _fmt(p["success@0.6"]),
                _fmt(p["auc"]),
                _fmt(p["fps"], 1),
                "–" if ratio is None else f"{ratio:.2f}x",
                str(p["lost_frames"]),
            ]
        )
    return markdown_table(header, body)


def latency_table(rows: list[dict[str, Any]], data_names: list[str]) -> str:
    """Median / p95 ms per stage and data set (the peers report only `total`)."""
    header = ["tracker", *(f"{s} ms" for s in STAGES)]
    body = []
    for row in rows:
        if not row["results"]:
            continue
        # One line per data set: frame sizes differ between them, and so do crop costs.
        for data_name in data_names:
            stats = row["results"][data_name]["pooled"]["latency_ms"]
            cells = [f"{stats[s]['median']:.1f} / {stats[s]['p95']:.1f}" if s in stats else "–" for s in STAGES]
            body.append([f"{row['name']} ({data_name})", *cells])
    return markdown_table(header, body)


def runs_on(row: dict[str, Any]) -> str:
    d = row["details"]
    if row["kind"] == "bundle":
        if not d:
            return "–"
        return f"bundle {d.get('bundle')}, {d.get('backend')} ({d.get('device')}), deblur {d.get('deblur_mode')}"
    if not d:
        return "–"
    return f"{d.get('package')}, {d.get('runs_in')}"


def notes(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for row in rows:
        if row["reason"]:
            out.append(f"- **{row['name']}**: {row['reason']}")
    return out


def render_markdown(result: dict[str, Any], meta: dict[str, Any], data_info: dict[str, Any], images: dict[str, str]) -> str:
    rows, reference = result["trackers"], result["reference"]
    data_names = list(data_info)
    lines = [
        "# Benchmark",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Run {meta['started']} on {meta['machine']}; {meta['threads']} threads per tracker; backend for our bundles: "
        f"{meta['backend']} (what each row ran on is below); whole run {meta['wall_seconds']:.0f} s. Speed = frames / seconds inside `init` + `track` "
        f"calls only (image decoding excluded); ratios are to **{reference}** in this same run, with every tracker run "
        "sequence by sequence in turn so a slow phase of the host hits them all alike.",
        "",
        "Metrics as ../shared/EVALUATION.md: frames after the first with ground truth present; P@15 / P@20 = share "
        "with centre error <= 15 / 20 px; S@0.6 = share with IoU > 0.6; AUC = mean success over IoU thresholds "
        "0, 0.05, ..., 1; a tracker that loses the target is scored on the box it still returns.",
        "",
        "| tracker | what it is | runs on |",
        "|---|---|---|",
        *[f"| {r['name']} | {r['label'] or '–'} | {runs_on(r)} |" for r in rows],
        "",
    ]
    for data_name in data_names:
        info = data_info[data_name]
        if info["kind"] == "synthetic":
            source = f"synthetic GoPro-style {info.get('split')} split, seed {info.get('seed')}"
        elif info.get("split"):
            blurred = "the blurred clips of " if info.get("blurred_only") else ""
            source = f"{blurred}the real-train {info['split']} split: {', '.join(info['clips'])}"
        else:
            source = info["path"]
        lines += [
            f"## {data_name}: {info['sequences']} sequences, {info['frames']} frames ({source})",
            "",
            accuracy_table(rows, data_name, reference),
            "",
        ]
        if data_name in images:
            lines += [f"![precision and success, {data_name}]({images[data_name]})", ""]
    if "speed_accuracy" in images:
        lines += ["## Speed and accuracy", "", f"![speed and accuracy]({images['speed_accuracy']})", ""]
    lines += ["## Latency per stage (median / p95 ms)", "", latency_table(rows, data_names), ""]
    missing = notes(rows)
    if missing:
        lines += ["## Rows without numbers", "", *missing, ""]
    versions = meta.get("versions")
    if versions:
        lines += ["Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    return "\n".join(lines)


def write_outputs(
    result: dict[str, Any],
    meta: dict[str, Any],
    data_info: dict[str, Any],
    out_dir: Path,
    markdown_copy: Path | None = None,
) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, reference = result["trackers"], result["reference"]
    data_names = list(data_info)
    written: dict[str, Path] = {}

    for tracker, per_data in result["runs"].items():
        for data_name, runs in per_data.items():
            for run in runs:
                write_boxes(out_dir / "boxes" / data_name / tracker / f"{run.name}.txt", run.boxes)

    images: dict[str, Path] = {}
    if any(row["results"] for row in rows):
        for data_name in data_names:
            images[data_name] = plots.plot_curves(rows, data_name, data_name, reference, out_dir / f"curves_{data_name}.png")
        images["speed_accuracy"] = plots.plot_speed_accuracy(rows, data_names, reference, out_dir / "speed_accuracy.png")
    written.update({f"plot:{k}": v for k, v in images.items()})

    doc = {"meta": meta, "data": data_info, "reference": reference, "trackers": rows}
    (out_dir / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    written["json"] = out_dir / "results.json"

    md = render_markdown(result, meta, data_info, {k: v.name for k, v in images.items()})
    (out_dir / "results.md").write_text(md)
    written["markdown"] = out_dir / "results.md"
    if markdown_copy is not None:
        # The same report elsewhere (e.g. the repository's BENCHMARKS.md), images linked relative to it.
        base = markdown_copy.resolve().parent
        rel = {k: Path(os.path.relpath(v.resolve(), base)).as_posix() for k, v in images.items()}
        markdown_copy.write_text(render_markdown(result, meta, data_info, rel))
        written["markdown_copy"] = markdown_copy
    return written
