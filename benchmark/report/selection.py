"""Report rows: one per method setting, the fair 'selected' (and optional 'oracle') row of each grid, and the
'tuned' row of each tuned method (its best trial on the inner validation, per fold)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from benchmark.report.columns import GROUP_KEYS, info, short_labels

BASELINE = "ce"


@dataclass
class Rows:
    """All report rows (`row`, `kind` in setting/selected/oracle/tuned) and how they relate to methods."""

    frame: pd.DataFrame
    order: list[str]
    fair: dict[str, str]
    selections: pd.DataFrame

    @property
    def baseline(self) -> str | None:
        return self.fair.get(BASELINE)

    def fair_frame(self) -> pd.DataFrame:
        """Rows that enter figures and statistics: each method's tuned row, else its selected row or single setting."""
        return self.frame[self.frame["row"].isin(list(self.fair.values()))]


def _method_order(results: pd.DataFrame) -> list[str]:
    methods = list(dict.fromkeys(results["method"]))
    return sorted(methods, key=lambda m: (m != BASELINE, methods.index(m)))


def _setting_order(rows: pd.DataFrame) -> list[str]:
    """Settings of one method, ordered by their parameter values."""
    params = [c for c in rows if c.startswith("param_") and rows[c].notna().any()]
    ordered = rows.drop_duplicates("method_label")
    if params:
        ordered = ordered.sort_values(params, kind="stable", na_position="first")
    return list(ordered["method_label"])


def choose(rows: pd.DataFrame, score: str, order: list[str]) -> pd.DataFrame:
    """Per (backbone, fold, repeat, seed), the done row with the best `score`; ties go to the earlier setting."""
    higher = info(score).higher_is_better
    done = rows[(rows["status"] == "done") & rows[score].notna()].copy()
    done["_rank"] = done["method_label"].map({label: i for i, label in enumerate(order)})
    done = done.sort_values([score, "_rank"], ascending=[not higher, True], kind="stable")
    return done.groupby(GROUP_KEYS, sort=False, dropna=False).head(1).drop(columns="_rank")


def trial_rows(results: pd.DataFrame) -> pd.Series:
    """Which rows are tuning trials (they form the tuned rows, not settings of their own)."""
    if "tune_trial" not in results:
        return pd.Series(False, index=results.index)
    return results["tune_trial"].notna()


def choose_trials(trials: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Per (backbone, fold, repeat, seed), the done trial with the best inner-validation score (each record names its
    score in `tune_metric`); ties go to the earlier trial."""
    score = str(trials["tune_metric"].dropna().iloc[0]) if trials["tune_metric"].notna().any() else "val_f1"
    higher = info(score).higher_is_better
    done = trials[(trials["status"] == "done") & trials[score].notna()]
    done = done.sort_values([score, "tune_trial"], ascending=[not higher, True], kind="stable")
    return done.groupby(GROUP_KEYS, sort=False, dropna=False).head(1), score


def build_rows(results: pd.DataFrame, select_by: str = "val_f1", oracle: bool = False) -> Rows:
    """Expand the results into report rows; `oracle` adds the choice by the matching test score."""
    parts, order, fair, picks = [], [], {}, []
    name = select_by.split("_", 1)[1]
    test_score = "test_nll" if name == "loss" else f"test_{name}"
    is_trial = trial_rows(results)
    labels = results.loc[~is_trial, "method_label"].drop_duplicates()
    shown = dict(zip(labels, short_labels(labels), strict=True))  # floats to 4 digits: the rows as displayed
    for method in _method_order(results):
        rows = results[(results["method"] == method) & ~is_trial]
        settings = _setting_order(rows) if len(rows) else []
        if settings:
            parts.append(rows.assign(row=rows["method_label"].map(shown), kind="setting"))
            order += [shown[s] for s in settings]
            fair[method] = shown[settings[0]]
        if len(settings) >= 2:
            for kind, score in [("selected", select_by)] + ([("oracle", test_score)] if oracle else []):
                label = f"{method} ({kind})"
                chosen = choose(rows, score, settings)
                parts.append(chosen.assign(row=label, kind=kind))
                picked = chosen[["method", *GROUP_KEYS, "method_label", score]].rename(columns={score: "score"})
                picks.append(picked.assign(kind=kind, by=score))
                order.append(label)
            fair[method] = f"{method} (selected)"
        trials = results[(results["method"] == method) & is_trial]
        if len(trials):
            label = f"{method} (tuned)"
            chosen, score = choose_trials(trials)
            parts.append(chosen.assign(row=label, kind="tuned"))
            picked = chosen[["method", *GROUP_KEYS, "method_label", score]].rename(columns={score: "score"})
            picks.append(picked.assign(kind="tuned", by=score))
            order.append(label)
            fair[method] = label
    frame = pd.concat(parts, ignore_index=True)
    columns = ["kind", "by", "method", *GROUP_KEYS, "method_label", "score"]
    selections = pd.concat(picks, ignore_index=True)[columns] if picks else pd.DataFrame(columns=columns)
    selections = selections.sort_values(columns[:7], kind="stable").reset_index(drop=True)
    return Rows(frame, order, fair, selections)
