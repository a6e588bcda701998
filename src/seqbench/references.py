"""Published numbers (reports/references.yaml) and how each compares with ours: only like with like.

Every entry states its protocol: look-back and horizon (null outside forecasting), split, normalization
(`global`: the dataset's train statistics only; `instance`: per-window normalization such as RevIN on
top), fitting, and its source. Our row of the same task, split and metric is set beside it only when
the protocols agree (`protocol_differences` is empty); otherwise the reference is listed apart,
labelled with every difference. `fitting_ours` states how our fitting differs where it does;
`evaluated_on` a published number computed on part of the split only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Mapping

import pandas as pd
import yaml

from seqbench import stats
from seqbench.errors import DataError
from seqbench.formatting import fmt
from seqbench.results import TaskMeta, split_name

REQUIRED = ("dataset", "task", "model", "reference_model", "split", "metric", "value", "source", "lookback",
            "horizon", "normalization", "fitting")
OPTIONAL = ("step", "difference", "fitting_ours", "evaluated_on", "protocol")
NORMALIZATIONS = {"global": "train statistics only", "instance": "per-window (RevIN-style)"}
COLUMNS = ["published model", "source", "look-back", "split / metric", "published", "model", "ours", "verdict",
           "compared", "differences", "protocol", "difference"]
TOLERANCE = 0.02


def load_references(path: Path, meta: Mapping[str, Mapping[str, TaskMeta]] | None = None) -> list[dict]:
    """The entries of references.yaml, checked: every field present and known, a known normalization,
    and (given the protocol's task metadata) look-back and horizon equal to those of the task named."""
    if not path.is_file():
        raise DataError(f"{path}: missing; restore reports/references.yaml from the repository")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = data.get("references", [])
    for i, entry in enumerate(entries):
        where = f"{path}: references[{i}]"
        missing = [k for k in REQUIRED if k not in entry]
        if missing:
            raise DataError(f"{where} lacks {missing}")
        unknown = [k for k in entry if k not in REQUIRED + OPTIONAL]
        if unknown:
            raise DataError(f"{where} has unknown fields {unknown}; known: {', '.join(REQUIRED + OPTIONAL)}")
        if entry["normalization"] not in NORMALIZATIONS:
            raise DataError(f"{where}: normalization {entry['normalization']!r}; use one of "
                            f"{', '.join(NORMALIZATIONS)}")
        task = (meta or {}).get(entry["dataset"], {}).get(entry["task"])
        if task is not None and (task.lookback, task.horizon) != (entry["lookback"], entry["horizon"]):
            raise DataError(f"{where}: look-back {entry['lookback']} and horizon {entry['horizon']}, but task "
                            f"{entry['task']!r} has look-back {task.lookback} and horizon {task.horizon}; name the "
                            "task of the same look-back and horizon")
    return entries


def protocol_differences(ref: Mapping, ours: Mapping) -> list[str]:
    """What separates a published number from ours: look-back, horizon, split, normalization, fitting and
    evaluation period. `ours` holds lookback, horizon, split, normalization; empty list: same protocol."""
    out = []
    if ref["lookback"] != ours.get("lookback"):
        out.append(f"look-back {ref['lookback']} (ours {ours.get('lookback')})")
    if ref["horizon"] != ours.get("horizon"):
        out.append(f"horizon {ref['horizon']} (ours {ours.get('horizon')})")
    if ref["split"] != ours.get("split"):
        out.append(f"{split_name(ref['split'])} split (ours {split_name(ours.get('split', ''))})")
    if ref["normalization"] != ours.get("normalization"):
        out.append(f"normalization {NORMALIZATIONS[ref['normalization']]} "
                   f"(ours {NORMALIZATIONS.get(ours.get('normalization'), ours.get('normalization'))})")
    if ref.get("fitting_ours"):
        out.append(f"fitting: {ref['fitting']} (ours: {ref['fitting_ours']})")
    if ref.get("evaluated_on"):
        out.append(f"evaluated on {ref['evaluated_on']} (ours: every window of the split)")
    return out


def verdict(ours: float, published: float, metric: str, tolerance: float = TOLERANCE) -> str:
    if math.isnan(ours):
        return "not run here"
    gap = (ours - published) / abs(published) if published else math.inf
    if not stats.lower_is_better(metric):
        gap = -gap
    if gap > tolerance:
        return f"ours falls short by {gap:.1%}"
    if gap < -tolerance:
        return f"ours better by {-gap:.1%}"
    return f"on par (within {tolerance:.0%})"


StepValue = Callable[[str, str, str, str, str, int], float]  # (dataset, model, regime, task, split, step) -> ours


def reference_rows(references: list[dict], summary: pd.DataFrame, handling: Mapping[tuple, dict], dataset: str,
                   tasks: list[str], step_value: StepValue | None = None) -> pd.DataFrame:
    """Published numbers for a section's tasks (a look-back group shows every look-back's references):
    compared with our row of the same protocol, or listed apart with the differences."""
    s = summary
    ok = s[(s["status"] == "ok") & (s["dataset"] == dataset) & (s["selection"] == "")]
    out = []
    for ref in (r for r in references if r["dataset"] == dataset and r["task"] in tasks):
        rows = ok[(ok["task"] == ref["task"]) & (ok["model"] == ref["model"]) & (ok["split"] == ref["split"])
                  & (ok["metric"] == ref["metric"])].sort_values("regime", key=lambda r: r != "protocol")
        where = f"{split_name(ref['split'])} {ref['metric']}" + (f" at t+{ref['step']}" if "step" in ref else "")
        row = {"published model": ref["reference_model"], "source": ref["source"],
               "look-back": "–" if ref["lookback"] is None else str(ref["lookback"]), "split / metric": where,
               "published": fmt(ref["value"]), "model": ref["model"], "ours": fmt(math.nan),
               "verdict": "", "compared": False, "differences": "", "protocol": ref.get("protocol", ""),
               "difference": ref.get("difference", "")}
        candidates = []
        for r in rows.itertuples():
            norm = "instance" if handling.get((dataset, r.model, r.regime), {}).get("instance_norm") else "global"
            ours = {"lookback": None if pd.isna(r.lookback) else int(r.lookback),
                    "horizon": None if pd.isna(r.horizon) else int(r.horizon), "split": r.split, "normalization": norm}
            candidates.append((r, protocol_differences(ref, ours)))
        match = next(((r, d) for r, d in candidates if not d), None)
        if match is not None:
            r = match[0]
            if "step" not in ref:
                value = float(r.mean)
            else:
                value = step_value(dataset, r.model, r.regime, r.task, r.split, ref["step"]) if step_value else math.nan
            label = r.model if r.regime == "protocol" else f"{r.model} ({r.regime})"
            row.update({"model": label, "ours": fmt(value), "compared": not math.isnan(value),
                        "verdict": verdict(value, float(ref["value"]), ref["metric"])})
        elif candidates:
            row["differences"] = "; ".join(candidates[0][1])
        else:
            trained = ok.loc[ok["task"] == ref["task"], "model"]
            row["differences"] = (f"{ref['model']} did not run on {ref['task']}" if not trained.empty else
                                  f"task {ref['task']} (look-back {ref['lookback']}) was not trained in this run")
        out.append(row)
    return pd.DataFrame(out, columns=COLUMNS)


def reference_notes(compared: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(column, label, text) per distinct protocol or difference text of the compared rows; a difference
    names the models it compares, e.g. "How transformer differs from Informer, Autoformer"."""
    notes = [("protocol", "Published protocol", t) for t in dict.fromkeys(t for t in compared["protocol"] if t)]
    for text in dict.fromkeys(t for t in compared["difference"] if t):
        rows = compared[compared["difference"] == text]
        ours = ", ".join(dict.fromkeys(rows["model"]))
        theirs = ", ".join(dict.fromkeys(rows["published model"]))
        notes.append(("difference", f"How {ours} differs from {theirs}", text))
    return notes


def listed_apart(other: pd.DataFrame) -> list[str]:
    """References not compared, one line per (why, source): the published numbers, then why they are apart."""
    groups: dict[tuple[str, str], list[str]] = {}
    for _, r in other.iterrows():
        why = r["differences"] or "no comparable run here"
        item = f"{r['published model']} {r['split / metric']} {r['published']}"
        groups.setdefault((why, r["source"]), []).append(item)
    return [f"{'; '.join(items)} ({source}). Apart because: {why}" for (why, source), items in groups.items()]
