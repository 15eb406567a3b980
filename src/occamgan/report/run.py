"""The report of one run directory: config, training curves, metric curves, final scores,
sharpness, evidence and samples.

It reads what exists and says what is missing: a run still training (no summary.json yet), a
metrics.jsonl with a torn last line or non-finite values logged as strings, or a run without
samples still gets a report.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import RunDirError
from ..train.run_dir import RunDir
from . import html as h
from . import plots
from .values import EVAL_PREFIX, SHARPNESS_PREFIX, as_number, fmt, series

#: at most this many sample grids are embedded (evenly spaced over training, first and last kept)
MAX_GRIDS = 12
#: summary.json keys that have sections of their own (not repeated in the overview)
_SECTIONS = ("metrics", "evidence")


def render_run_report(run_dir: str | os.PathLike) -> str:
    """The self-contained HTML report of the run at ``run_dir`` (a :class:`RunDirError` if it
    is not a run)."""
    run = RunDir(run_dir)
    if not run.exists() or not run.is_run():
        raise RunDirError(f"{str(run.path)!r} is not a run directory (no config.yaml with metrics.jsonl or a checkpoint)")
    records = run.read_metrics()
    warnings = []
    try:
        summary = run.read_summary()
    except RunDirError as exc:
        summary = {}
        warnings.append(f"summary ignored: {exc}")
    scores = summary.get("metrics") if isinstance(summary.get("metrics"), dict) else {}
    parts = [
        ("overview", "Overview", overview(run, summary, records, warnings)),
        ("config", "Configuration", config_section(run)),
        ("training", "Training curves", training_curves(records)),
        ("metric-curves", "Metrics over training", metric_curves(records)),
        ("scores", "Final scores", scores_section(scores, records, bool(summary))),
        ("sharpness", "Sharpness", sharpness_section(scores, records)),
        ("evidence", "Evidence", evidence_section(summary.get("evidence"))),
        ("samples", "Samples", samples_section(run)),
    ]
    parts = [p for p in parts if p[2] is not None]
    body = "".join(h.section(anchor, title, content) for anchor, title, content in parts)
    return h.page(f"occamgan run {run.path.resolve().name}", body, nav=[(a, t) for a, t, _ in parts])


# --------------------------------------------------------------------------- sections
def overview(run: RunDir, summary: dict[str, Any], records: list[dict[str, Any]], warnings: list[str]) -> str:
    last_step = next((r["step"] for r in reversed(records) if as_number(r.get("step")) is not None), None)
    rows: list[tuple[str, Any]] = [("directory", str(run.path.resolve()))]
    if summary:
        rows.append(("status", "finished"))
    else:
        rows.append(("status", "no summary yet (training, stopped or killed)"))
    if last_step is not None:
        rows.append(("last logged step", fmt(last_step)))
    nested = []
    for key, value in summary.items():
        if key in _SECTIONS or key == "plot":  # own sections (the plot is shown under samples)
            continue
        if isinstance(value, dict):
            nested.append(h.details(key, h.pre(json.dumps(value, indent=2, sort_keys=True, default=str))))
        else:
            rows.append((key, fmt(value)))
    out = h.table(None, rows) + "".join(nested)
    for warning in warnings:
        out += h.paragraph(warning, "warn")
    return out


def config_section(run: RunDir) -> str:
    """The resolved config: one table per top-level section of dotted keys, the YAML text itself
    in a collapsible block."""
    if not run.config_path.is_file():
        return h.paragraph("no config.yaml")
    text = run.config_path.read_text(errors="replace")
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return h.paragraph(f"config.yaml does not parse: {exc}", "warn") + h.pre(text)
    if not isinstance(tree, dict):
        return h.pre(text)
    general = [(k, fmt(v)) for k, v in tree.items() if not isinstance(v, dict)]
    blocks = [h.heading("general") + h.table(None, general)] if general else []
    for name, sub in tree.items():
        if isinstance(sub, dict):
            blocks.append(h.heading(str(name)) + h.table(None, [(k, fmt(v)) for k, v in _flatten(sub)]))
    return h.figures(blocks) + h.details("config.yaml", h.pre(text))


def _flatten(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            items.extend(_flatten(value, name + "."))
        else:
            items.append((name, value))
    return items


def training_curves(records: list[dict[str, Any]]) -> str:
    losses = series(records, lambda k: k.startswith("loss"))
    lrs = series(records, lambda k: k.startswith("lr_"))
    if not losses and not lrs:
        return h.paragraph("no training losses logged yet (metrics.jsonl missing or empty)")
    figs = []
    if losses:
        figs.append(h.image(plots.curves(losses, "losses"), "loss curves"))
    if lrs:
        figs.append(h.image(plots.curves(lrs, "learning rates", auto_scale=False), "learning-rate curves"))
    return h.figures(figs)


def _eval_key(key: str) -> bool:
    return key.startswith(EVAL_PREFIX) and not key[len(EVAL_PREFIX):].startswith(SHARPNESS_PREFIX)


def metric_curves(records: list[dict[str, Any]]) -> str:
    """One plot per ``eval/<name>`` logged as a number at two or more steps."""
    found = series(records, _eval_key)
    over_time = {k: v for k, v in found.items() if len(set(v[0])) > 1}
    if not over_time:
        note = "metrics were evaluated at one step only (see the final scores)" if found else "no evaluations logged"
        return h.paragraph(note + "; set eval.every to follow them during training")
    return h.figures(h.image(plots.curves({k[len(EVAL_PREFIX):]: v}, k[len(EVAL_PREFIX):], small=True), f"{k} over training")
                     for k, v in over_time.items())


def _last_evals(records: list[dict[str, Any]]) -> dict[str, Any]:
    last: dict[str, Any] = {}
    for record in records:
        for key, value in record.items():
            if key.startswith(EVAL_PREFIX):
                last[key[len(EVAL_PREFIX):]] = value
    return last


def scores_section(scores: dict[str, Any], records: list[dict[str, Any]], finished: bool) -> str:
    """Flat scores in a table; nested records (``protocol_*``: how a score was measured) each in
    a collapsible block."""
    note = ""
    if not scores and not finished:
        scores = _last_evals(records)
        note = h.paragraph("no summary.json yet: the latest logged evaluations")
    flat = [(k, v) for k, v in scores.items() if not isinstance(v, dict) and not k.startswith(SHARPNESS_PREFIX)]
    nested = [(k, v) for k, v in scores.items() if isinstance(v, dict)]
    if not flat and not nested:
        return note + h.paragraph("no scores recorded")
    out = note
    if flat:
        out += h.table(["metric", "value"], [(k, fmt(v)) for k, v in flat], numeric=[False, True])
    if nested:
        out += h.heading("protocols")
        out += "".join(h.details(k, h.pre(json.dumps(v, indent=2, sort_keys=True, default=str))) for k, v in nested)
    return out


def sharpness_section(scores: dict[str, Any], records: list[dict[str, Any]]) -> str | None:
    """Top Hessian eigenvalues (``top_eigenvalue*``), from the summary or else the log; None
    (no section) when never measured."""
    values = {k: v for k, v in scores.items() if k.startswith(SHARPNESS_PREFIX)}
    for key, value in _last_evals(records).items():
        if key.startswith(SHARPNESS_PREFIX):
            values.setdefault(key, value)
    if not values:
        return None
    out = h.table(["quantity", "value"], [(k, fmt(v)) for k, v in values.items()], numeric=[False, True])
    figs = []
    for key, value in values.items():
        if isinstance(value, list) and len(value) > 1 and all(as_number(v) is not None for v in value):
            figs.append(h.image(plots.bars([as_number(v) for v in value], key, "eigenvalue rank"), f"{key} spectrum"))
    over_time = series(records, lambda k: k.startswith(EVAL_PREFIX + SHARPNESS_PREFIX))
    for key, line in over_time.items():
        if len(set(line[0])) > 1:
            name = key[len(EVAL_PREFIX):]
            figs.append(h.image(plots.curves({name: line}, name, small=True), f"{name} over training"))
    return out + (h.figures(figs) if figs else "")


def evidence_section(evidence: Any) -> str | None:
    if evidence is None:
        return None
    if not isinstance(evidence, dict):
        return h.pre(fmt(evidence))
    flat = [(k, fmt(v)) for k, v in evidence.items() if not isinstance(v, dict)]
    out = h.table(["quantity", "value"], flat, numeric=[False, True]) if flat else ""
    for key, value in evidence.items():
        if isinstance(value, dict):
            out += h.details(key, h.pre(json.dumps(value, indent=2, sort_keys=True, default=str)))
    return out or h.paragraph("empty evidence record")


def _grid_step(path: Path) -> str:
    digits = re.findall(r"\d+", path.stem)
    return f"step {int(digits[-1])}" if digits else path.stem


def _spread(items: list[Path], n: int) -> list[Path]:
    if len(items) <= n:
        return items
    picks = sorted({round(i * (len(items) - 1) / (n - 1)) for i in range(n)})
    return [items[i] for i in picks]


def _embed_file(path: Path, alt: str, caption: str, pixelated: bool = False) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return h.paragraph(f"{path.name}: cannot be read ({exc.strerror})", "warn")
    if not h.is_png(data):
        return h.paragraph(f"{path.name}: not a PNG image", "warn")
    return h.image(data, alt, caption, pixelated)


def samples_section(run: RunDir) -> str:
    """Image runs: the grids of fixed latents written at checkpoints; every run: the final samples
    plot (a scatter for toy data)."""
    out = ""
    grids = run.grid_paths()
    if grids:
        shown = _spread(grids, MAX_GRIDS)
        out += h.heading("over training (fixed latents)")
        if len(shown) < len(grids):
            out += h.paragraph(f"{len(shown)} of {len(grids)} grids, evenly spaced")
        out += h.figures(_embed_file(p, f"samples at {_grid_step(p)}", _grid_step(p), pixelated=True) for p in shown)
    if run.samples_plot_path.is_file():
        out += h.heading("final samples") + _embed_file(run.samples_plot_path, "final samples", run.samples_plot_path.name)
    return out or h.paragraph("no samples written yet")
