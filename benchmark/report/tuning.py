"""What the tuned rows rest on: the budget, the sampler, the keys searched and the trials each method got."""

from __future__ import annotations

import json

import pandas as pd

from benchmark.report.columns import GROUP_KEYS
from benchmark.report.selection import trial_rows


def budget_table(results: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Per method and (backbone, fold, repeat, seed): the study's budget, trials recorded, done, failed, and the keys
    searched (studies without any recorded trial are not listed)."""
    trials = results[trial_rows(results)]
    if "tune_budget" not in trials:
        trials = trials.assign(tune_budget=float("nan"))  # records of the first tuning version
    columns = ["method", *GROUP_KEYS, "budget", "trials", "done", "failed", "searched"]
    if trials.empty:
        return pd.DataFrame(columns=columns)
    keys = trials["tune_params"].map(lambda text: ", ".join(sorted(json.loads(text))) if isinstance(text, str) else "")
    table = (trials.assign(done=trials["status"] == "done", failed=trials["status"] != "done", searched=keys)
             .groupby(["method", *GROUP_KEYS], sort=False, dropna=False)
             .agg(budget=("tune_budget", "max"), trials=("tune_trial", "size"), done=("done", "sum"),
                  failed=("failed", "sum"), searched=("searched", "first"))
             .reset_index())
    # records of the first tuning version hold no budget: the config's trials (1 for a study with nothing to search)
    trials_cfg = (config.get("tune") or {}).get("trials")
    table["budget"] = table["budget"].fillna(table["searched"].map(lambda keys: trials_cfg if keys else 1)).astype(int)
    return table[columns]


def tuning_note(budget: pd.DataFrame, config: dict) -> str:
    """One paragraph for the page: how the tuned rows were chosen and the budget each method used."""
    if budget.empty:
        return ""
    tune = config.get("tune") or {}
    per_method = []
    for method, rows in budget.groupby("method", sort=False):
        low, high = int(rows["trials"].min()), int(rows["trials"].max())
        count = f"{low}" if low == high else f"{low}-{high}"
        searched = rows["searched"].iloc[0] or "nothing (one trial: more would repeat it)"
        failed = int(rows["failed"].sum())
        per_method.append(f"{method}: {count} trials per fold over {searched}" + (f", {failed} failed" if failed else ""))
    return (f"“(tuned)” rows: per backbone, fold, repeat and seed, the best of each method's trials by its inner-validation "
            f"score, evaluated once on the test part; the statistics compare tuned methods with tuned ce. Budget: "
            f"{tune.get('trials', '?')} trials per method and fold, sampler {tune.get('sampler', '?')}, seed "
            f"{tune.get('seed', '?')}. Used: " + "; ".join(per_method) + ".")


def partial_tuning(budget: pd.DataFrame, config: dict) -> str | None:
    """A warning when some study has fewer finished trials than the budget (a tuning sweep still running)."""
    trials = (config.get("tune") or {}).get("trials")
    if budget.empty or not trials:
        return None
    short = budget[budget["done"] + budget["failed"] < budget["budget"]]
    if short.empty:
        return None
    return (f"Partial tuning: {len(short)} of the {len(budget)} studies with recorded trials have fewer finished "
            f"trials than their budget ({trials}); their tuned rows choose among the trials so far.")
