"""Model selection over a finished sweep: rank its runs and grid points by a score, held-out
evidence by default (Filippone & Linhard 2025: GAN training is approximate Bayesian model
selection; the evidence is the quantity that selects). Scores a run does not have yet are
computed and recorded in the run (``occamgan eval`` semantics), then results.csv is rebuilt.

Writes ``ranking.md`` (grid points by mean score over seeds, then every run) and ``ranking.csv``
next to results.csv, and ``plots/select_<score>_vs_<key>.png`` for every grid key."""
from __future__ import annotations

import csv
import io
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..atomic import atomic_write_text
from ..errors import ConfigError
from .layout import PLOTS_DIR, RUNS_DIR, read_plan
from .report import _is_number, collect_rows, summarize

RANKING_MD = "ranking.md"
RANKING_CSV = "ranking.csv"
#: scores where lower is better (everything else is ranked highest first)
LOWER_IS_BETTER = ("fid", "kid", "w2", "mmd", "chi2_score", "top_eigenvalue")


@dataclass
class Selection:
    out: Path
    score: str
    points: list[dict[str, Any]]
    runs: list[dict[str, Any]]

    @property
    def best(self) -> dict[str, Any] | None:
        return self.points[0] if self.points else None


def lower_is_better(score: str) -> bool:
    return score.split("_")[0] in LOWER_IS_BETTER or score in LOWER_IS_BETTER


def select(out: str | Path, score: str = "evidence", *, params: dict[str, Any] | None = None,
           log: Callable[[str], None] | None = None, plots: bool = True) -> Selection:
    """Rank the finished runs of the sweep in ``out`` by ``score`` (a value of a registered metric;
    ``evidence`` is computed where missing, with the metric's knobs in ``params``)."""
    from ..evaluation import evaluate_run

    out, log = Path(out), log or (lambda msg: None)
    plan = read_plan(out)
    rows, keys, _ = collect_rows(out)
    done = [r for r in rows if r["status"] == "done"]
    if not done:
        raise ConfigError(f"{str(out)!r} has no finished runs to select from")
    missing = [r for r in done if not _is_number(r.get(score))]
    for i, row in enumerate(missing, 1):
        if score != "evidence":
            raise ConfigError(f"run {row['run']} has no {score!r}; score it first (occamgan eval) or select by evidence")
        log(f"[{i}/{len(missing)}] evidence of {row['run']}")
        evaluate_run(out / RUNS_DIR / row["run"], ["evidence"], params=params, record=True)
    if missing:
        summarize(out, plots=False)
        rows, keys, _ = collect_rows(out)
        done = [r for r in rows if r["status"] == "done"]
    sign = 1.0 if lower_is_better(score) else -1.0
    runs = sorted((r for r in done if _is_number(r.get(score))), key=lambda r: sign * float(r[score]))
    points = _rank_points(runs, keys, score, sign)
    _write(out, score, keys, points, runs, plan)
    if plots:
        _plot(out / PLOTS_DIR, score, keys, runs)
    return Selection(out, score, points, runs)


def _rank_points(runs: list[dict[str, Any]], keys: list[str], score: str, sign: float) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(json.dumps([r[k] for k in keys]), []).append(r)
    points = []
    for group in groups.values():
        values = [float(r[score]) for r in group]
        points.append({**{k: group[0][k] for k in keys}, "mean": statistics.fmean(values),
                       "std": statistics.stdev(values) if len(values) > 1 else math.nan, "seeds": len(values),
                       "best_seed_wins": 0})
    points.sort(key=lambda p: sign * p["mean"])
    # how often each point is the best on a seed (paired per seed)
    for seed in {r["seed"] for r in runs}:
        of_seed = [r for r in runs if r["seed"] == seed]
        if of_seed:
            winner = [of_seed[0][k] for k in keys]
            for p in points:
                if [p[k] for k in keys] == winner:
                    p["best_seed_wins"] += 1
    return points


def _write(out: Path, score: str, keys: list[str], points: list[dict[str, Any]], runs: list[dict[str, Any]],
           plan: dict[str, Any]) -> None:
    order = "lowest first" if lower_is_better(score) else "highest first"
    lines = [f"Ranking by {score} ({order}); mean ± sample standard deviation over seeds; "
             f"best on seed = how many seeds this grid point wins.", "",
             "| rank | " + " | ".join(keys) + f" | {score} | seeds | best on seed |",
             "|---|" + "---|" * (len(keys) + 3)]
    for i, p in enumerate(points, 1):
        shown = f"{p['mean']:.4g}" + ("" if math.isnan(p["std"]) else f" ± {p['std']:.2g}")
        lines.append(f"| {i} | " + " | ".join(str(p[k]) for k in keys) + f" | {shown} | {p['seeds']} | "
                     f"{p['best_seed_wins']} |")
    lines += ["", "| rank | run | " + " | ".join(keys) + f" | seed | {score} |", "|---|---|" + "---|" * (len(keys) + 2)]
    for i, r in enumerate(runs, 1):
        lines.append(f"| {i} | {r['run']} | " + " | ".join(str(r[k]) for k in keys) + f" | {r['seed']} | "
                     f"{float(r[score]):.4g} |")
    atomic_write_text(out / RANKING_MD, "\n".join(lines) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["rank", "run", *keys, "seed", score])
    for i, r in enumerate(runs, 1):
        writer.writerow([i, r["run"], *(json.dumps(r[k]) if isinstance(r[k], (list, dict)) else r[k] for k in keys),
                         r["seed"], r[score]])
    atomic_write_text(out / RANKING_CSV, buf.getvalue())


def _plot(out_dir: Path, score: str, keys: list[str], runs: list[dict[str, Any]]) -> list[Path]:
    """The score against each grid key: every run as a dot, the mean per value as a line."""
    from ..plots import new_figure

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for key in keys:
        values = list(dict.fromkeys(json.dumps(r[key]) for r in runs))
        numeric = all(_is_number(json.loads(v)) for v in values)
        fig, ax = new_figure((5, 3.4), dpi=100)
        xs, means = [], []
        for i, v in enumerate(values):
            ys = [float(r[score]) for r in runs if json.dumps(r[key]) == v]
            pos = json.loads(v) if numeric else i
            ax.scatter([pos] * len(ys), ys, s=10, alpha=0.4, color="gray")
            xs.append(pos)
            means.append(statistics.fmean(ys))
        ax.plot(xs, means, marker="o")
        if not numeric:
            ax.set_xticks(range(len(values)), [json.loads(v) for v in values])
        ax.set_xlabel(key)
        ax.set_ylabel(score)
        fig.tight_layout()
        path = out_dir / f"select_{score}_vs_{key.replace('.', '_')}.png"
        fig.savefig(path)
        paths.append(path)
    return paths
