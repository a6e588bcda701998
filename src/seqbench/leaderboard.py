"""reports/leaderboard.md, and the table model the HTML report renders too (one source for both).

A board is one (dataset, task, selection) headline table: one row per architecture, the regimes side
by side. Every number is rounded to what its seed spread supports (formatting.mean_std).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from seqbench import formatting as F
from seqbench import ranking, references, summary as S
from seqbench.params import Params
from seqbench.results import (baseline_model, dataset_order, headline_split, primary_metric, split_name, task_meta,
                              task_order)

REGIMES = ("protocol", "tuned")
VERDICT_TEXT = {"best": "best", "tied": "tied for first", "worse": "worse", "untested": "–"}


def mark(row) -> str:
    """'best'; 'tied for first (DM, Holm p 0.21)'; 'worse (Wilcoxon, Holm p 0.003)'; '–' untested."""
    text = VERDICT_TEXT.get(row["verdict"], "–")
    if row["verdict"] in ("tied", "worse"):
        test = {"dm": "DM", "wilcoxon": "Wilcoxon"}.get(row["test"], row["test"])
        text += f" ({test}, Holm p {F.pvalue(row['p_holm'])})"
    return text


def statistics_note(n_seeds: int) -> str:
    floor = 2 / 2 ** n_seeds
    return ("Each cell: mean ± sample std over seeds, rounded to 2 significant digits of the std; 95% interval: "
            "Student t on the log scale (errors) or logit scale (accuracies), so it stays inside the metric's range. "
            "vs best: a paired test against the table's best entry, Holm-corrected within the table: "
            "Diebold-Mariano on per-example losses averaged over seeds (forecast windows with Newey-West variance "
            "over the windows that share targets; reviews; character windows), or a Wilcoxon test over seeds where "
            f"the seed count can reach p < 0.05 (6 or more; with {n_seeds} seeds its floor is p = {floor:.3g}). "
            "'tied for first': not significantly worse than the best; the best and these form the top set. "
            "'–': no test could reach the level (reason below the table); never read it as 'no difference'. "
            "Skill = 1 - error / error of the dataset's baseline on the same split and metric.")


def header_line(params: Params, meta: dict) -> str:
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    commits = ", ".join(c[:12] for c in meta.get("commits", [])) or "unknown"
    devices = ", ".join(meta.get("devices", [])) or "unknown"
    seeds = ", ".join(str(s) for s in params.seeds)
    regimes = ", ".join(params.regimes)
    return (f"preset **{params.preset}** · seeds {seeds} · regimes {regimes} · commit {commits} · device {devices}"
            f" · {today}")


def headline_label(dataset: str) -> str:
    """'test mse', 'validation mae': the split is named in every headline."""
    return f"{split_name(headline_split(dataset))} {primary_metric(dataset)}"


# --- preset notes ------------------------------------------------------------------------------------
def _every_kth(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"every {k}{suffix} training window"


def _at_most_epochs(n: int) -> str:
    return f"at most {n} epoch{'' if n == 1 else 's'}"


BUDGET_PHRASES = {
    "train_stride": _every_kth, "max_train_samples": "at most {} training windows".format,
    "max_epochs": _at_most_epochs, "patience": "patience {}".format, "lr": "lr {}".format,
    "tasks": lambda tasks: f"only {', '.join(tasks)}",
}


def search_note(params: Params, dataset: str) -> str | None:
    """The search budget of the tuned regime on a dataset (the same for every architecture), or None."""
    if "tuned" not in params.regimes:
        return None
    budget = params.tune_budget(dataset)
    if budget.trials == 0:
        return "tuned regime: not searched under this preset"
    parts = [f"{budget.trials or 10} trials per architecture"]
    parts += [BUDGET_PHRASES[key](value) for key, value in budget.model_dump(exclude_none=True).items()
              if key in BUDGET_PHRASES and key != "tasks"]
    if budget.max_eval_samples:
        parts.append(f"at most {budget.max_eval_samples} validation windows")
    if budget.tasks:
        parts.append(f"scored on {', '.join(budget.tasks)}")
    return "tuned regime searched on validation: " + ", ".join(parts)


def preset_notes(params: Params) -> dict[str, list[str]]:
    """Per dataset, what the preset leaves out of the protocol: tasks not trained and budget cuts."""
    from seqbench import datasets as dataset_registry

    notes: dict[str, list[str]] = {}
    preset = params.presets[params.preset]
    for dataset in dataset_order(params):
        budget = params.budget(dataset)
        lines = []
        if budget.tasks is not None:
            left = [t for t in dataset_registry.task_names(dataset, params.dataset(dataset)) if t not in budget.tasks]
            if left:
                lines.append(f"tasks not trained: {', '.join(left)}")
        if (budget.train_stride or 1) > 1:
            lines.append(BUDGET_PHRASES["train_stride"](budget.train_stride))
        if budget.max_train_samples:
            lines.append(BUDGET_PHRASES["max_train_samples"](budget.max_train_samples))
        if budget.max_eval_samples:
            lines.append(f"at most {budget.max_eval_samples} evaluation windows per split")
        protocol = params.dataset(dataset).training
        if budget.optimizer not in (None, protocol.optimizer):
            lines.append(f"optimizer {budget.optimizer} (lr {budget.lr}) instead of the protocol's "
                         f"{protocol.optimizer} (lr {protocol.lr}), which converges more slowly")
        elif budget.lr is not None and budget.lr != protocol.lr:
            lines.append(f"{protocol.optimizer} at lr {budget.lr} instead of the protocol's {protocol.lr}, "
                         "which converges more slowly")
        patience = budget.patience if budget.patience is not None else preset.patience
        lines.append(f"{BUDGET_PHRASES['max_epochs'](budget.max_epochs or preset.max_epochs)}, "
                     f"{BUDGET_PHRASES['patience'](patience)}")
        if budget.lr_decay == "linear":
            lines.append("learning rate decayed linearly (epoch e of N at (N - e + 1) / N of it)")
        for model, cut in budget.models.items():
            cuts = [BUDGET_PHRASES[key](value) for key, value in cut.model_dump(exclude_none=True).items()]
            lines.append(f"{model}: {', '.join(cuts)}")
        search = search_note(params, dataset)
        if search:
            lines.append(search)
        notes[dataset] = lines
    return notes


# --- the table model ---------------------------------------------------------------------------------
@dataclass
class Board:
    dataset: str
    task: str
    selection: str
    title: str  # e.g. "h96 · test mse · look-back 96"
    regimes: list[str]
    rows: list[tuple[str, dict[str, pd.Series]]]  # (model, {regime: summary row}) best first
    reasons: list[str]  # distinct reasons of the untested cells


def board(summary: pd.DataFrame, dataset: str, task: str, selection: str = "") -> Board:
    rows = S.headline_rows(summary, dataset, task, selection)
    regimes = [r for r in REGIMES if r in set(rows["regime"])] + sorted(set(rows["regime"]) - set(REGIMES))
    by_model: dict[str, dict[str, pd.Series]] = {}
    for _, row in rows.iterrows():  # best first, so models come in order of their best regime
        by_model.setdefault(row["model"], {})[row["regime"]] = row
    reasons = list(dict.fromkeys(r["no_test"] for cells in by_model.values() for r in cells.values() if r["no_test"]))
    look = ""
    if not rows.empty and not pd.isna(rows["lookback"].iloc[0]):
        look = (" · look-back searched on validation" if selection == S.SEARCHED
                else f" · look-back {rows['lookback'].iloc[0]}")
    return Board(dataset, task, selection, f"{task} · {headline_label(dataset)}{look}", regimes,
                 list(by_model.items()), reasons)


def input_text(handling: dict, dataset: str, model: str, regimes) -> str:
    """Normalization and channel handling of each regime's row ('a / b' where the regimes differ)."""
    texts = []
    for regime in regimes:
        h = handling.get((dataset, model, regime))
        if h is not None:
            texts.append(f"{'instance' if h['instance_norm'] else 'global'} norm, "
                         f"{'per channel' if h['channel_independent'] else 'channels mixed'}")
    return " / ".join(dict.fromkeys(texts)) if len(set(texts)) > 1 else (texts[0] if texts else "–")


def _leaves(settings: dict) -> dict[str, object]:
    """A recorded settings dict flattened to its leaves; a block's keys (the transformer's `forecast`)
    keep their own names, as the search space names them."""
    out: dict[str, object] = {}
    for key, value in settings.items():
        out.update(_leaves(value) if isinstance(value, dict) else {key: value})
    return out


def _setting(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def settings_text(handling: dict, dataset: str, model: str, regime: str) -> str:
    """The settings a regime's jobs recorded that differ from the protocol's (all of them where the
    protocol recorded none): for the tuned regime, what the search changed."""
    recorded = (handling.get((dataset, model, regime)) or {}).get("settings")
    if not recorded:
        return ""
    protocol = _leaves((handling.get((dataset, model, "protocol")) or {}).get("settings") or {})
    changed = {k: v for k, v in _leaves(recorded).items() if v is not None and (k not in protocol or protocol[k] != v)}
    return ", ".join(f"{k} {_setting(v)}" for k, v in changed.items())


def tuned_settings(b: Board, handling: dict) -> list[str]:
    """'model: what its search changed', for each tuned row of a table (the note under it)."""
    texts = {m: settings_text(handling, b.dataset, m, "tuned") for m, cells in b.rows if "tuned" in cells}
    return [f"{m}: {text}" for m, text in texts.items() if text]


def boards_for(summary: pd.DataFrame, params: Params, dataset: str) -> list[tuple[str, list[Board]]]:
    """Per look-back group of a dataset, in protocol order: (group, its boards): the table of the group's
    shortest trained look-back, then the searched one when two or more look-backs were trained."""
    ok = summary[(summary["status"] == "ok") & (summary["dataset"] == dataset)]
    out = []
    for group in dict.fromkeys(ok.loc[ok["selection"] == "", "group"]):
        trained = task_order(params, dataset, ok.loc[(ok["group"] == group) & (ok["selection"] == ""), "task"])
        base = group if group in trained else trained[0]
        boards = [board(summary, dataset, base)]
        if ((ok["task"] == group) & (ok["selection"] == S.SEARCHED)).any():
            boards.append(board(summary, dataset, group, S.SEARCHED))
        out.append((group, boards))
    order = {t: i for i, t in enumerate(task_order(params, dataset, [g for g, _ in out]))}
    return sorted(out, key=lambda item: order[item[0]])


# --- markdown -------------------------------------------------------------------------------------------
def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda v: str(v).replace("|", "\\|")
    return (["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            + ["| " + " | ".join(esc(v) for v in row) + " |" for row in rows] + [""])


def board_markdown(b: Board, handling: dict) -> list[str]:
    headers = ["model"]
    for regime in b.regimes:
        headers += [f"{regime}: mean ± std", "95% CI", "vs best"]
    headers += ["skill", "n", "input"] + (["look-back"] if b.selection == S.SEARCHED else [])
    lines = [f"#### {b.title}", ""]
    rows = []
    for model, cells in b.rows:
        row = [model]
        for regime in b.regimes:
            r = cells.get(regime)
            if r is None:
                row += ["–", "", "not run" if regime != "protocol" else ""]
                continue
            text = F.mean_std(r["mean"], r["std"])
            row += [f"**{text}**" if r["verdict"] in ("best", "tied") else text,
                    F.interval(r["ci95_low"], r["ci95_high"], r["mean"], r["std"]), mark(r)]
        first = next(iter(cells.values()))
        row += [F.fmt(first["skill"]), "/".join(str(cells[g]["n"]) for g in b.regimes if g in cells),
                input_text(handling, b.dataset, model, [g for g in b.regimes if g in cells])]
        if b.selection == S.SEARCHED:
            row.append("/".join(str(cells[g]["lookback"]) for g in b.regimes if g in cells))
        rows.append(row)
    lines += _md_table(headers, rows)
    lines += [f"- no test: {reason}" for reason in b.reasons]
    tuned = tuned_settings(b, handling)
    if tuned:
        lines.append(f"- tuned settings (where they differ from the protocol's): {'; '.join(tuned)}")
    return lines + ([""] if b.reasons or tuned else [])


def overview_rows(summary: pd.DataFrame, params: Params, families: tuple[str, ...]) -> tuple[list[str], list[tuple]]:
    """(architectures by best average rank, [(dataset, task, regime, {model: row})]) for one family group."""
    s = summary[(summary["status"] == "ok") & summary["family"].isin(families) & (summary["selection"] == "")
                & summary["headline"].astype(bool) & (summary["task"] == summary["group"])]
    mean_rank = s.assign(r=s["rank"].astype(float)).groupby("model")["r"].mean().sort_values(kind="stable")
    models = list(mean_rank.index)
    lines = []
    for dataset in dataset_order(params):
        d = s[s["dataset"] == dataset]
        for task in task_order(params, dataset, d["task"]):
            for regime in [r for r in REGIMES if r in set(d["regime"])]:
                rows = d[(d["task"] == task) & (d["regime"] == regime)]
                if not rows.empty:
                    lines.append((dataset, task, regime, {r["model"]: r for _, r in rows.iterrows()}))
    return models, lines


def overview_markdown(summary: pd.DataFrame, params: Params) -> list[str]:
    out = []
    for name, families in ranking.GROUPS.items():
        models, lines = overview_rows(summary, params, families)
        if not lines:
            continue
        rows = []
        for dataset, task, regime, cells in lines:
            row = [f"{dataset} · {task}" + ("" if regime == "protocol" else f" ({regime})"), headline_label(dataset)]
            for m in models:
                r = cells.get(m)
                text = "" if r is None else F.mean_only(r["mean"], r["std"])
                if r is not None and r["verdict"] == "best":
                    text = f"**{text}**"
                elif r is not None and r["verdict"] == "tied":
                    text += " ≈"
                row.append(text)
            rows.append(row)
        out += [f"### Overview: {name}", "", "Bold: best; ≈: tied for first (not significantly worse, Holm).", ""]
        out += _md_table(["task", "headline"] + models, rows)
    return out


def across_markdown(result: ranking.AcrossTasks) -> list[str]:
    lines = [f"### Average ranks across {result.name} tasks", ""]
    if result.reason:
        return lines + [f"No ranking: {result.reason}.", ""]
    lines.append(f"{len(result.blocks)} tasks ({', '.join(result.blocks)}); Friedman chi² = {result.chi2:.2f}, "
                 f"p = {F.pvalue(result.p_value)}; Nemenyi critical difference {result.cd:.2f} (alpha 0.05).")
    lines.append("")
    groups = {i: [g for g, members in enumerate(result.cliques) if i in members] for i in range(len(result.entries))}
    rows = [[str(i + 1), e, f"{r:.2f}", ", ".join(chr(65 + g) for g in groups[i]) or "–"]
            for i, (e, r) in enumerate(zip(result.entries, result.avg_ranks))]
    lines += _md_table(["#", "model", "average rank", "not different from (same letter)"], rows)
    if result.excluded:
        lines += [f"- left out: {text}" for text in result.excluded_by_reason()] + [""]
    return lines


def did_not_finish_markdown(dnf: pd.DataFrame) -> list[str]:
    lines = ["## Did not finish", ""]
    if dnf.empty:
        return lines + ["Every job finished.", ""]
    rows = []
    for r in dnf.itertuples():
        where = ", ".join(f"{k} {v}" for k, v in (("task", r.task), ("epoch", r.epoch), ("batch", r.batch))
                          if not pd.isna(v) and v != "")
        reason = r.reason + (f" [{r.error}]" if r.error else "")
        rows.append([r.dataset, r.model, r.regime, str(r.seed), r.status, reason, where or "–", r.finished_tasks or "–",
                     f"`{r.command}`"])
    return lines + _md_table(["dataset", "model", "regime", "seed", "status", "reason", "stopped at",
                              "tasks finished", "command"], rows)


def references_markdown(refs: pd.DataFrame) -> list[str]:
    if refs.empty:
        return []
    compared = refs[refs["compared"]]
    other = refs[~refs["compared"]]
    lines = ["Published references (reports/references.yaml), same protocol:", ""]
    if not compared.empty:
        shown = ["published model", "source", "look-back", "split / metric", "published", "model", "ours", "verdict"]
        lines += _md_table(shown, [[r[c] for c in shown] for _, r in compared.iterrows()])
        lines += [f"- {label}: {text}" for _, label, text in references.reference_notes(compared)]
    else:
        lines += ["None of the same protocol ran here.", ""]
    if not other.empty:
        lines += ["", "Listed apart (a different protocol, or no comparable run):", ""]
        lines += [f"- {line}" for line in references.listed_apart(other)]
    return lines + [""]


def leaderboard_markdown(params: Params, summary: pd.DataFrame, meta: dict, dnf: pd.DataFrame,
                         refs: list[dict], handling: dict, step_value=None) -> str:
    lines = ["# seqbench leaderboard", "", header_line(params, meta), "", statistics_note(len(params.seeds)), ""]
    lines += overview_markdown(summary, params)
    for result in ranking.all_groups(summary):
        lines += across_markdown(result)
    lines += did_not_finish_markdown(dnf)
    notes = preset_notes(params)
    status = summary[summary["status"] != "ok"]
    for dataset in dataset_order(params):
        lines += [f"## {dataset}", ""]
        unavailable = status[(status["dataset"] == dataset) & (status["status"] == "unavailable")]
        if not unavailable.empty:
            lines += [f"**Unavailable**: {unavailable.iloc[0]['reason']}", ""]
            continue
        lines += [f"Headline: {headline_label(dataset)} (baseline for skill: {baseline_model(dataset) or '–'}). "
                  f"Preset {params.preset}: {'; '.join(notes[dataset])}.", ""]
        for group, boards in boards_for(summary, params, dataset):
            lines += [f"### {group}", ""]
            for b in boards:
                lines += board_markdown(b, handling)
            tasks = [t for t, m in task_meta(params, dataset).items() if m.group == group]
            lines += references_markdown(references.reference_rows(refs, summary, handling, dataset, tasks, step_value))
        for _, row in status[status["dataset"] == dataset].iterrows():
            who = f"{row['model']} on " if row["model"] else ""
            lines.append(f"- {row['status'].replace('_', ' ')}: {who}{row['task']} ({row['reason']})")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
