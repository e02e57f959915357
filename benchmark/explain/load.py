"""Find an experiment's finished runs, load their selected checkpoints and their fold's test images."""

from __future__ import annotations

import json
import pickle
import sys
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

import methods
from benchmark.config import load_config, output_of
from benchmark.dataset import Prepared, prepare
from benchmark.errors import UserError, safe_name
from benchmark.experiment import Experiment
from benchmark.plan import RunSpec
from benchmark.store import Store
from benchmark.train import FoldData, build_model

PARAM_SYMBOLS = {"alpha": "α", "beta": "β", "epsilon": "ε", "gamma": "γ", "lambda_": "λ"}


@dataclass
class TestPart:
    """A fold's test images in [0, 1] ([N, 3, H, W]), labels, file names, and its training-part normalization."""

    repeat: int
    fold: int
    images: Tensor
    labels: np.ndarray
    files: list[str]
    mean: Tensor
    std: Tensor

    def normalize(self, images: Tensor) -> Tensor:
        """Exactly the model input of training: (x - mean) / std with the training part's statistics."""
        return (images - self.mean) / self.std

    def uint8(self, index: np.ndarray) -> np.ndarray:
        """Images [n, H, W, 3] as uint8, for figures."""
        return (self.images[index].permute(0, 2, 3, 1).numpy() * 255.0).round().astype(np.uint8)


@dataclass
class LoadedRun:
    spec: RunSpec
    record: dict
    label: str
    model: nn.Module


def load_experiment(target: str | Path) -> tuple[Experiment, Path]:
    """An output folder or an experiment file → (the config the runs were made with, the output folder).

    The output folder's config.resolved.yaml (what `run` saved, --set overrides included) is preferred; an experiment
    file only says where that folder is (its run.output) and where its plugins are.
    """
    output, experiment = output_of(target)
    resolved = output / "config.resolved.yaml"
    if experiment is None:
        if not resolved.is_file():
            raise UserError(f"{output}: no config.resolved.yaml; pass an experiment output folder (runs/<name>) or its YAML")
        return _with_output(load_config(resolved), output), output
    given = load_config(experiment)
    if not (output / "runs").is_dir():
        raise UserError(f"{target}: its output folder {output} has no runs yet; run `python -m benchmark run {target}`")
    if not resolved.is_file():
        return given, output
    return _with_output(load_config(resolved), output).located(given.source, given.folder), output


def _with_output(cfg: Experiment, output: Path) -> Experiment:
    """The config with run.output set to where its runs are now (an output folder may have been moved)."""
    return cfg.replace(run=cfg.run.model_copy(update={"output": str(output)}))


def short_labels(records: list[dict]) -> dict[str, str]:
    """Per run id: the method, with only the parameters that differ among the chosen runs of that method."""
    params = {r["run_id"]: r.get("method_params") or {} for r in records}
    labels = {}
    for record in records:
        same_method = [params[r["run_id"]] for r in records if r["method"] == record["method"]]
        mine = params[record["run_id"]]
        varying = [k for k in mine if len({json.dumps(p.get(k)) for p in same_method}) > 1]
        inner = ", ".join(f"{PARAM_SYMBOLS.get(k, k)}={mine[k]}" for k in varying)
        labels[record["run_id"]] = f"{record['method']}({inner})" if inner else record["method"]
    counts = Counter((r["backbone"], labels[r["run_id"]]) for r in records)
    return {r["run_id"]: labels[r["run_id"]] + (f" [{r['run_id'][:6]}]" if counts[(r["backbone"], labels[r["run_id"]])] > 1
                                               else "") for r in records}


def choose_records(store: Store, requested: list[str] | None, first_seed: int) -> list[dict]:
    """The runs to explain: `requested` ids, or each finished (method setting, backbone) at fold 0, repeat 0, first seed
    (tuning trials only when requested: a study's trials would otherwise each count as a setting)."""
    records = [r for r in store.records() if r.get("run_id")]
    done = [r for r in records if r.get("status") == "done"]
    finished = {r["run_id"]: r for r in done if store.run(r["run_id"]).has_best()}
    if requested:
        known = {r["run_id"]: r for r in records}
        for run_id in requested:
            if run_id not in known:
                raise UserError(f"--runs {run_id}: no such run in {store.root}/runs (see run_id in results.csv)")
            if run_id not in finished:
                status = known[run_id].get("status", "pending")
                raise UserError(f"--runs {run_id}: the run is {status} or its best.pt is missing; pick a finished run")
        return [finished[run_id] for run_id in dict.fromkeys(requested)]
    candidates = [r for r in done if r.get("fold") == 0 and r.get("repeat") == 0 and r.get("seed") == first_seed
                  and r.get("tune_trial") is None]
    chosen = [r for r in candidates if r["run_id"] in finished]
    left_out = [r for r in candidates if r["run_id"] not in finished]
    if left_out and not chosen:
        raise UserError(
            f"{store.root}: the {len(left_out)} finished run(s) at fold 0, repeat 0, seed {first_seed} have no checkpoint "
            "(best.pt: records kept without checkpoints, or deleted), and explain needs the trained models; train "
            "them again into a new folder (python -m benchmark run CONFIG --only fold=0 --set run.output=NEW_FOLDER) "
            "and explain that folder"
        )
    if left_out:
        shown = ", ".join(f"{r.get('method_label', r.get('method'))} {r.get('backbone')} [{r['run_id']}]"
                          for r in left_out[:5])
        print(f"explain: left out {len(left_out)} finished run(s) without their checkpoint (best.pt): {shown}"
              f"{' and more' if len(left_out) > 5 else ''}", file=sys.stderr)
    if not chosen:
        raise UserError(
            f"{store.root}: no finished run at fold 0, repeat 0, seed {first_seed}; train one first "
            "(python -m benchmark run CONFIG --only fold=0) or choose runs with --runs RUN_ID ..."
        )
    return chosen


def order_records(records: list[dict], cfg: Experiment) -> list[dict]:
    """Backbones in config order, then methods in config order, then parameter values."""
    backbones, method_names = cfg.backbone_names(), cfg.method_names()

    def key(r: dict) -> tuple:
        b = backbones.index(r["backbone"]) if r["backbone"] in backbones else len(backbones)
        m = method_names.index(r["method"]) if r["method"] in method_names else len(method_names)
        params = json.dumps(r.get("method_params") or {}, sort_keys=True)
        return b, r["backbone"], m, r["method"], params, r["repeat"], r["fold"], r["seed"]

    return sorted(records, key=key)


def prepare_data(cfg: Experiment, records: list[dict]) -> Prepared:
    """Plugins loaded, data decoded and folds made; refuses runs trained on other data or folds."""
    methods.load_plugins(cfg.plugins, cfg.folder)
    prepared = prepare(cfg)
    for record in records:
        if record.get("folds_fingerprint") not in (None, "", prepared.folds_fingerprint):
            raise UserError(
                f"run {record['run_id']}: it was trained on other data or folds (folds_fingerprint "
                f"{record['folds_fingerprint']} != {prepared.folds_fingerprint} now); explain it with its own data"
            )
        classes = record.get("task_classes") or []
        if classes and classes != prepared.class_names:
            raise UserError(f"run {record['run_id']}: classes {classes} differ from the data's {prepared.class_names}")
    return prepared


def test_part(prepared: Prepared, repeat: int, fold: int) -> TestPart:
    """The (repeat, fold) test images and the normalization computed from that fold's training part (as in training)."""
    match = [f for f in prepared.folds if f.repeat == repeat and f.fold == fold]
    if not match:
        raise UserError(f"repeat {repeat} fold {fold}: not a fold of this experiment")
    data = FoldData(prepared, match[0], torch.device("cpu"), channels_last=False)
    raw, labels = data.parts["test"]
    names = prepared.files.relative()
    return TestPart(repeat, fold, raw.float() / 255.0, labels.numpy(), [names[i] for i in match[0].test],
                    data.mean, data.std)


def load_run(record: dict, store: Store, cfg: Experiment, num_classes: int, label: str) -> LoadedRun:
    """The run's model with its selected checkpoint (best.pt), in eval mode on the CPU."""
    spec = RunSpec(record["run_id"], record.get("experiment", cfg.name), record["method"],
                   record.get("method_params") or {}, record["backbone"], None,
                   int(record["repeat"]), int(record["fold"]), int(record["seed"]))
    model, _ = build_model(spec, num_classes, cfg.data.image_size)
    try:
        with warnings.catch_warnings():  # a foreign pickle also warns about its protocol: the error line says it all
            warnings.simplefilter("ignore")
            state = store.run(spec.run_id).load_best(torch.device("cpu"))
        model.load_state_dict(state["model"])
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, TypeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise UserError(f"run {spec.run_id}: its checkpoint {safe_name(store.run(spec.run_id).best_path)} cannot be "
                        f"loaded ({type(exc).__name__}: {safe_name(first)}); it is damaged or not this run's: leave "
                        "the run out (--runs) or train it again into a new run.output") from None
    model.eval()
    return LoadedRun(spec, record, label, model)


def predict(model: nn.Module, inputs: Tensor, batch_size: int = 64) -> np.ndarray:
    """Softmax probabilities [N, K] (float64)."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            out.append(torch.softmax(model(inputs[start : start + batch_size]).float(), dim=1).double())
    return torch.cat(out).numpy()
