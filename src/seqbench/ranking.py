"""Ranks across tasks (Demsar 2006): average ranks, Friedman's test and Nemenyi's critical difference.

Blocks are the (dataset, task) headline tables of a family group (the fixed look-back of each ETT
horizon, not its searched copy), scored by the dataset's primary metric on its headline split; the
competitors are the (model, regime) entries that finished on every block. An entry missing from a
block is left out, and said so: Friedman needs complete blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from seqbench import stats

GROUPS = {"forecast": ("forecast",), "text and characters": ("text", "chars")}


def entry_label(model: str, regime: str) -> str:
    return model if regime == "protocol" else f"{model} ({regime})"


@dataclass
class AcrossTasks:
    name: str
    blocks: list[str] = field(default_factory=list)  # "dataset · task"
    entries: list[str] = field(default_factory=list)  # best average rank first
    avg_ranks: list[float] = field(default_factory=list)
    chi2: float = float("nan")
    p_value: float = float("nan")
    cd: float = float("nan")
    cliques: list[list[int]] = field(default_factory=list)  # indices into entries
    excluded: dict[str, str] = field(default_factory=dict)
    reason: str = ""  # why no ranking could be made ('' when it was)

    def excluded_by_reason(self) -> list[str]:
        """'entry, entry (reason)', one per distinct reason: a regime trained on some datasets only leaves
        each of its entries out for the same missing tasks."""
        groups: dict[str, list[str]] = {}
        for label, why in self.excluded.items():
            groups.setdefault(why, []).append(label)
        return [f"{', '.join(labels)} ({why})" for why, labels in groups.items()]


def across_tasks(summary: pd.DataFrame, name: str, families: tuple[str, ...]) -> AcrossTasks:
    s = summary
    rows = s[(s["status"] == "ok") & (s["selection"] == "") & s["headline"].astype(bool)
             & s["family"].isin(families) & (s["task"] == s["group"])]
    out = AcrossTasks(name)
    blocks = list(dict.fromkeys(zip(rows["dataset"], rows["task"])))
    out.blocks = [f"{d} · {t}" for d, t in blocks]
    if len(blocks) < 2:
        out.reason = (f"{len(blocks)} task{'s' if len(blocks) != 1 else ''} with results: ranks across tasks "
                      "need two or more")
        return out
    cells = {(d, t, entry_label(m, r)): v for d, t, m, r, v in
             zip(rows["dataset"], rows["task"], rows["model"], rows["regime"], rows["mean"])}
    labels = list(dict.fromkeys(entry_label(m, r) for m, r in zip(rows["model"], rows["regime"])))
    complete = []
    for label in labels:
        absent = [f"{d} · {t}" for d, t in blocks if not np.isfinite(cells.get((d, t, label), np.nan))]
        if absent:
            out.excluded[label] = f"no result on {', '.join(absent)}"
        else:
            complete.append(label)
    if len(complete) < 3:
        out.reason = f"{len(complete)} models finished on every task: Friedman's test needs three or more"
        return out
    scores = np.array([[cells[(d, t, label)] for label in complete] for d, t in blocks])
    lower = [stats.lower_is_better(s.loc[(s["dataset"] == d) & (s["task"] == t), "metric"].iloc[0]) for d, t in blocks]
    avg = stats.average_ranks(scores, lower)
    order = np.argsort(avg, kind="stable")
    out.entries = [complete[i] for i in order]
    out.avg_ranks = [float(avg[i]) for i in order]
    out.chi2, out.p_value = stats.friedman(scores, lower)
    out.cd = stats.nemenyi_cd(len(complete), len(blocks))
    out.cliques = stats.cd_cliques(out.avg_ranks, out.cd)
    return out


def all_groups(summary: pd.DataFrame) -> list[AcrossTasks]:
    return [across_tasks(summary, name, families) for name, families in GROUPS.items()]
