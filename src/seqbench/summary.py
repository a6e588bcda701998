"""Statistics of the results: one row per (dataset, task, model, regime, split, metric) of reports/summary.csv.

A *table* is one (dataset, task, selection, split, metric); its entries are the (model, regime) pairs that
finished. Per entry: mean, sample std and a 95% t-interval over seeds on the metric's scale
(stats.mean_ci), rank, skill against the dataset's baseline, and a paired test against the table's best:
  1. Diebold-Mariano on per-example losses averaged over seeds (losses.py) where the metric has one;
  2. else Wilcoxon over seeds where the seed count can reach the level (n >= 6 for alpha 0.05);
  3. else no test ('untested', with the reason in `no_test`): never a "not significant".
Holm adjusts the p-values of each table; `verdict` is best / tied / worse / untested, and the best with
every 'tied' entry is the tied-for-first set. Forecast tasks that differ only in look-back (ETT: h96 and
l336_h96) form a group; `selection` "lookback searched" adds the group's rows for the look-back whose
validation primary metric is better (select_lookback), tested again among themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd

from seqbench import datasets as dataset_registry
from seqbench import losses as loss_lib
from seqbench import stats
from seqbench.errors import DataError
from seqbench.results import TaskMeta, baseline_model, headline_split, primary_metric

SEARCHED = "lookback searched"
TABLE = ["dataset", "task", "selection", "split", "metric"]
SUMMARY_COLUMNS = ["dataset", "family", "task", "group", "selection", "lookback", "horizon", "model", "regime",
                   "split", "metric", "primary", "headline", "n", "mean", "std", "ci95_low", "ci95_high", "skill",
                   "rank", "test", "p_value", "p_holm", "verdict", "no_test", "status", "reason"]


def select_lookback(val_scores: Mapping[int, float], lower_better: bool) -> int | None:
    """The look-back whose validation score is better (ties: the shorter); NaN scores never win."""
    valid = {lb: s for lb, s in val_scores.items() if s is not None and not math.isnan(s)}
    if not valid:
        return None
    return min(valid, key=lambda lb: ((valid[lb] if lower_better else -valid[lb]), lb))


def lookback_choices(seed_means: pd.DataFrame, meta: Mapping[str, Mapping[str, TaskMeta]]) -> dict[tuple, str]:
    """(dataset, group, model, regime) -> the chosen task, for groups with two or more trained look-backs;
    chosen on the validation split's primary metric only."""
    out = {}
    val = seed_means[seed_means["split"] == "val"]
    for (dataset, model, regime), rows in val.groupby(["dataset", "model", "regime"], sort=False):
        metric = primary_metric(dataset)
        scores = rows[rows["metric"] == metric].set_index("task")["value"]
        groups: dict[str, dict[int, str]] = {}
        for task in scores.index:
            m = meta.get(dataset, {}).get(task)
            if m is not None and m.lookback is not None:
                groups.setdefault(m.group, {})[m.lookback] = task
        for group, by_lookback in groups.items():
            if len(by_lookback) < 2:
                continue
            chosen = select_lookback({lb: float(scores[t]) for lb, t in by_lookback.items()},
                                     stats.lower_is_better(metric))
            if chosen is not None:
                out[(dataset, group, model, regime)] = by_lookback[chosen]
    return out


def _with_selection(results: pd.DataFrame, meta) -> pd.DataFrame:
    """results plus group, lookback, horizon, selection columns and the 'lookback searched' copies."""
    def look(d, t, attr):
        m = meta.get(d, {}).get(t)
        return getattr(m, attr) if m is not None else (t if attr == "group" else None)
    table = results.assign(group=[look(d, t, "group") for d, t in zip(results["dataset"], results["task"])],
                           lookback=[look(d, t, "lookback") for d, t in zip(results["dataset"], results["task"])],
                           horizon=[look(d, t, "horizon") for d, t in zip(results["dataset"], results["task"])],
                           selection="")
    means = table.groupby(["dataset", "task", "model", "regime", "split", "metric"], sort=False)["value"].mean()
    choices = lookback_choices(means.reset_index(), meta)
    picked = [table[(table["dataset"] == d) & (table["task"] == t) & (table["model"] == m) & (table["regime"] == r)]
              .assign(selection=SEARCHED, source_task=t, task=g) for (d, g, m, r), t in choices.items()]
    table = table.assign(source_task=table["task"])
    return pd.concat([table, *picked], ignore_index=True) if picked else table


@dataclass
class _Entry:
    model: str
    regime: str
    source_task: str
    values: pd.Series  # seed -> value
    ci: stats.MeanCI
    meta: dict = field(default_factory=dict)


def _test(family: str, metric: str, entry: _Entry, best: _Entry, split: str, dataset: str,
          losses_by: Mapping[tuple, pd.DataFrame], horizon) -> tuple[str, float, bool, str]:
    """(test, p, worse, no_test reason) of one entry against the best of its table."""
    loss = loss_lib.loss_for(family, metric)
    if loss is not None:
        mine = losses_by.get((dataset, entry.source_task, entry.model, entry.regime, split, loss))
        theirs = losses_by.get((dataset, best.source_task, best.model, best.regime, split, loss))
        if mine is not None and theirs is not None:
            result = loss_lib.paired_test(family, mine, theirs, horizon)
            if result is not None and not math.isnan(result.pvalue):
                return "dm", result.pvalue, result.statistic > 0, ""
    common = entry.values.index.intersection(best.values.index)
    n = len(common)
    if stats.wilcoxon_min_p(n) < stats.ALPHA:
        p = stats.wilcoxon_paired(entry.values[common].to_numpy(), best.values[common].to_numpy())
        if not math.isnan(p):
            worse = entry.ci.mean > best.ci.mean if stats.lower_is_better(metric) else entry.ci.mean < best.ci.mean
            return "wilcoxon", p, worse, ""
    why = f"no per-example loss for {metric}" if loss is None else "no paired predictions"
    return "", math.nan, False, (f"{why}; with {n} seeds the exact Wilcoxon test cannot go below "
                                 f"p = {stats.wilcoxon_min_p(n):.3g}")


def _table_rows(key: tuple, group: pd.DataFrame, losses_by) -> list[dict]:
    dataset, task, selection, split, metric = key
    try:
        lower = stats.lower_is_better(metric)
    except ValueError as error:
        raise DataError(f"runs/{dataset}/*/*/seed*/metrics.json, task {task!r}: {error}") from None
    family = dataset_registry.get(dataset).family
    entries = []
    for (model, regime), g in group.groupby(["model", "regime"], sort=False):
        values = g.set_index("seed")["value"]
        entries.append(_Entry(model, regime, g["source_task"].iloc[0], values, stats.mean_ci(values.to_numpy(), metric),
                              {"group": g["group"].iloc[0], "lookback": g["lookback"].iloc[0],
                               "horizon": g["horizon"].iloc[0]}))
    rank = stats.ranks([e.ci.mean for e in entries], lower_better=lower)
    best = int(np.nanargmin(rank)) if not np.all(np.isnan(rank)) else None
    base = next((e for e in entries if e.model == baseline_model(dataset) and e.regime == "protocol"), None)
    tests = [("", math.nan, False, "") if best is None or i == best else
             _test(family, metric, e, entries[best], split, dataset, losses_by, e.meta["horizon"])
             for i, e in enumerate(entries)]
    adjusted = stats.holm([t[1] for t in tests])
    verdicts = stats.verdicts(best if best is not None else -1, adjusted, [t[2] for t in tests])
    rows = []
    for i, e in enumerate(entries):
        skill = math.nan
        if family == "forecast" and lower and base is not None and base.ci.mean and not math.isnan(base.ci.mean):
            skill = 1.0 - e.ci.mean / base.ci.mean
        rows.append({
            "dataset": dataset, "family": family, "task": task, "group": e.meta["group"], "selection": selection,
            "lookback": e.meta["lookback"], "horizon": e.meta["horizon"], "model": e.model, "regime": e.regime,
            "split": split, "metric": metric, "primary": metric == primary_metric(dataset),
            "headline": metric == primary_metric(dataset) and split == headline_split(dataset),
            "n": e.ci.n, "mean": e.ci.mean, "std": e.ci.std, "ci95_low": e.ci.low, "ci95_high": e.ci.high,
            "skill": skill, "rank": pd.NA if math.isnan(rank[i]) else int(rank[i]), "test": tests[i][0],
            "p_value": tests[i][1], "p_holm": adjusted[i], "verdict": verdicts[i] if best is not None else "untested",
            "no_test": tests[i][3], "status": "ok", "reason": "",
        })
    return rows


def summary_table(results: pd.DataFrame, meta: Mapping[str, Mapping[str, TaskMeta]],
                  losses: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every table's statistics (see the module text); `losses` from losses.example_losses."""
    losses = losses if losses is not None else pd.DataFrame(columns=loss_lib.COLUMNS)
    losses_by = {k: g[["key", "pos", "value"]] for k, g in losses.groupby(
        ["dataset", "task", "model", "regime", "split", "loss"], sort=False)} if not losses.empty else {}
    table = _with_selection(results, meta)
    rows = []
    for key, group in table.groupby(TABLE, sort=False):
        rows += _table_rows(key, group, losses_by)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def with_status(summary: pd.DataFrame, status: pd.DataFrame) -> pd.DataFrame:
    extra = status.assign(family=status["dataset"].map(lambda d: dataset_registry.get(d).family), selection="")
    extra = extra.reindex(columns=SUMMARY_COLUMNS)
    table = pd.concat([summary, extra], ignore_index=True) if not extra.empty else summary.copy()
    return table.astype({"n": "Int64", "rank": "Int64", "lookback": "Int64", "horizon": "Int64"})


def sort_summary(summary: pd.DataFrame, dataset_rank: Mapping[str, int],
                 task_rank: Mapping[tuple, int]) -> pd.DataFrame:
    """Datasets and tasks in report order, the fixed look-back before the searched one, then split, metric,
    rank; status rows last."""
    key = pd.DataFrame({"d": summary["dataset"].map(dataset_rank), "s": summary["status"] != "ok",
                        "t": [task_rank.get((d, t), -1) for d, t in zip(summary["dataset"], summary["task"])],
                        "sel": summary["selection"].fillna(""), "split": summary["split"].fillna(""),
                        "m": summary["metric"].fillna(""), "r": summary["rank"].fillna(0)})
    order = key.sort_values(["d", "s", "t", "sel", "split", "m", "r"], kind="stable").index
    return summary.loc[order].reset_index(drop=True)


def headline_rows(summary: pd.DataFrame, dataset: str, task: str, selection: str = "") -> pd.DataFrame:
    """One table's headline rows (headline split, primary metric), best first."""
    s = summary
    rows = s[(s["status"] == "ok") & (s["dataset"] == dataset) & (s["task"] == task) & (s["selection"] == selection)
             & s["headline"].astype(bool)]
    return rows.sort_values(["rank", "model", "regime"], kind="stable")
