"""The experiment file as frozen, typed models: one per section, every key with its type, default, bound and meaning.

Loading, `--set` overrides, the one-line error messages and path resolution live in benchmark/config.py.
"""

from __future__ import annotations

import itertools
import re
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, PrivateAttr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from benchmark.errors import UserError, brief

AUGMENTATIONS = ("hflip", "vflip", "rot90")
SELECT_BY = ("val_f1", "val_accuracy", "val_macro_f1", "val_loss", "last")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
TRACKERS = ("mlflow", "tensorboard")
SAMPLERS = ("tpe", "random", "grid")
SEED_MAX = 2**32 - 1  # NumPy and scikit-learn take seeds in 0..2**32-1
# The bounds the code relies on live in the models below (and in these constants): the config, --set and tune.space
# are all validated against them, and the code downstream trusts them (tests/test_config.py walks them).
MIN_BATCH_SIZE = 2  # batch norm cannot train on one image


def checked(check: Callable[[Any], str | None]) -> AfterValidator:
    """A validator running `check` (an error text or None) after the type is right; its text goes into the message."""

    def run(value: Any) -> Any:
        problem = check(value)
        if problem:
            raise PydanticCustomError("check", "{problem}", {"problem": problem})
        return value

    return AfterValidator(run)


def _device_check(value: str) -> str | None:
    if value in ("auto", "cpu", "cuda", "mps") or (value.startswith("cuda:") and value[5:].isdigit()):
        return None
    return "allowed: auto | cpu | cuda | cuda:N | mps"


def _workers(value: Any) -> int | str:
    """An integer ≥ 1 or 'auto' (a union pydantic would report once per member: checked here in one step)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PydanticCustomError("wrong_type", "wrong type")
    if value == "auto" or (isinstance(value, int) and value >= 1):
        return value
    raise PydanticCustomError("check", "{problem}", {"problem": "allowed: an integer ≥ 1 or 'auto'"})


def _seed_list(value: list) -> str | None:
    if value and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= SEED_MAX for v in value):
        return None
    return f"must be a non-empty list of integers in 0..{SEED_MAX}"


def _regex_check(value: str) -> str | None:
    if value == "duplicates":
        return None
    try:
        compiled = re.compile(value)
    except re.error as exc:
        return f"not a valid regular expression ({exc})"
    return None if compiled.groups >= 1 else "needs one capturing group, e.g. '(normal_b\\d)', or the value 'duplicates'"


def _methods_check(value: list) -> str | None:
    for item in value:
        if isinstance(item, str):
            continue
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return "each entry must be a method name or a mapping with a 'name' key (other keys: its parameters)"
    return None if value else "must list at least one method"


def _backbones_check(value: list) -> str | None:
    for item in value:
        if isinstance(item, str):
            continue
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or set(item) - {"name", "weights"}:
            return "each entry must be a backbone name or a mapping with keys name and optional weights (a local file)"
    return None if value else "must list at least one backbone"


def _classes_check(value: dict) -> str | None:
    owner: dict[str, object] = {}
    for label, folders in value.items():
        if not isinstance(folders, list) or not folders or not all(isinstance(f, str) for f in folders):
            return f"class {brief(label)} must map to a non-empty list of folder names"
        for folder in folders:
            if folder in owner:
                other = "twice in the same class" if owner[folder] == label else f"in two classes, {brief(owner[folder])} and"
                return f"folder {brief(folder)} is listed {other} {brief(label)}; each folder may belong to one class"
            owner[folder] = label
    return None if len(value) >= 2 else "needs at least two classes"


def _space_check(value: dict) -> str | None:
    """Each entry: KEY (train.optimizer.lr or METHOD.PARAM) → a dimension `methods.space.parse_dimension` reads."""
    from methods.space import parse_dimension

    for key, dist in value.items():
        if not isinstance(key, str) or "." not in key:
            return f"key {brief(key)} must be a dotted name: train.optimizer.lr or METHOD.PARAM (e.g. alpha_js.beta)"
        try:
            parse_dimension(dist)
        except UserError as exc:
            return f"{key}: {exc}"
    return None


def _name_check(value: str) -> str | None:
    """A name is a file name of its own: it names runs/<name> and reports/<name>, and must not leave them."""
    if value in ("", ".", "..") or "/" in value or "\\" in value or not value.isprintable():
        return "must be a plain name: not empty, '.' or '..', without / or \\ or control characters, e.g. solder-5class"
    return None


Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]


@dataclass(frozen=True)
class MethodEntry:
    """One entry of `methods:`: a name, or {name, PARAM: value | [grid values]}. `params` keeps the entry's order;
    a list value is a grid (every value is a run), any other value is fixed."""

    index: int
    name: str
    params: dict[str, Any]

    @classmethod
    def parse(cls, index: int, entry: str | dict) -> MethodEntry:
        if isinstance(entry, str):
            return cls(index, entry, {})
        return cls(index, entry["name"], {k: v for k, v in entry.items() if k != "name"})

    @property
    def fixed(self) -> dict[str, Any]:
        """The parameters that are not grids (what a tuning study starts from)."""
        return {k: v for k, v in self.params.items() if not isinstance(v, list)}

    def points(self) -> list[dict[str, Any]]:
        """Every grid point: the parameters of one run each (as given, not yet resolved by the method)."""
        grids = [v if isinstance(v, list) else [v] for v in self.params.values()]
        return [dict(zip(self.params, values)) for values in itertools.product(*grids)]


def macro_headline(n_classes: int, positive: str | None) -> bool:
    """More than two classes and no data.positive: macro-F1 is the headline and the default selection score, not the F1
    of whichever class sorts second."""
    return n_classes > 2 and positive is None


class Section(BaseModel):
    """A mapping of known keys: every value of the right type (no coercion but int → float), finite, in range."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Resize(Section):
    policy: Literal["stretch", "letterbox", "via"] = Field("stretch", description="how crops become image_size squares")
    via: Annotated[int, Field(ge=4)] | None = Field(None, description="policy via: down-sample to via × via first")


class Synthetic(Section):
    n: int = Field(1000, ge=10, description="images generated")
    seed: Seed = Field(0, description="generator seed")
    size: int = Field(64, ge=16, description="generated image side in pixels")
    normal_fraction: float = Field(0.8, gt=0, lt=1, description="share of the normal class")


class Data(Section):
    root: str = Field(description="a folder, or 'synthetic'")
    layout: Literal["folders", "split"] = Field(
        "folders", description="folders: one sub-folder per class, pooled for k-fold; split: train/ validation|valid|val/ "
        "test/, each with class folders")
    classes: Annotated[dict, checked(_classes_check)] | None = Field(
        None, description="new label → source folders, e.g. {normal: [normal], defective: [...]}")
    positive: str | None = Field(None, description="class for F1/precision/recall (default: the second class)")
    image_size: int = Field(84, ge=8, description="side of the square model input in pixels")
    resize: Resize = Field(default_factory=Resize, description="how crops are resized (see data.md)")
    augment: list[Literal["hflip", "vflip", "rot90"]] = Field(
        default_factory=list, description="applied to training batches only")
    on_bad_file: Literal["skip", "error"] = Field("skip", description="an unreadable image: skip it (with a warning) or stop")
    synthetic: Synthetic = Field(default_factory=Synthetic, description="used when root is 'synthetic'")


class Protocol(Section):
    kind: Literal["kfold", "fixed"] = Field("kfold", description="kfold, or fixed (for data.layout: split)")
    folds: int = Field(5, ge=2, description="k of k-fold")
    repeats: int = Field(1, ge=1, description="k-fold repeated with seeds seed, seed + 1, ...")
    stratify: bool = Field(True, description="keep the class shares in every part")
    group_by: Annotated[str, checked(_regex_check)] | None = Field(
        None, description="regex on file names (first group = group id), or 'duplicates'")
    val_fraction: float = Field(0.15, gt=0, lt=1, description="carved from each training part, for model selection")
    select_by: Literal["val_f1", "val_accuracy", "val_macro_f1", "val_loss", "last"] = Field(
        "val_f1", description="which epoch's model is tested (default: val_f1; val_macro_f1 for more than two classes "
        "without data.positive)")
    seed: Seed = Field(42, description="seed of the splits")


class Optimizer(Section):
    name: Literal["adam", "adamw", "sgd"] = Field("adam", description="torch optimizer")
    lr: float = Field(1e-4, gt=0, description="learning rate")
    weight_decay: float = Field(1e-3, ge=0, description="L2 penalty (adamw: decoupled)")
    momentum: float = Field(0.9, ge=0, description="sgd only")


class Scheduler(Section):
    name: Literal["cosine", "step"] = Field("cosine", description="cosine annealing over the epochs, or step decay")
    step_size: int = Field(30, ge=1, description="step: epochs between decays")
    gamma: float = Field(0.1, gt=0, description="step: decay factor")


class EarlyStopping(Section):
    patience: int = Field(15, ge=1, description="epochs without a better validation score before stopping")


class Train(Section):
    epochs: int = Field(100, ge=1, description="training epochs")
    batch_size: int = Field(64, ge=MIN_BATCH_SIZE, description="training batch size (a batch of 1 image cannot train "
                            "batch norm; a last batch of 1 is dropped)")
    eval_batch_size: int = Field(256, ge=1, description="evaluation batch size (changes the last bits of losses)")
    optimizer: Optimizer = Field(default_factory=Optimizer, description="the optimizer")
    scheduler: Scheduler | None = Field(None, description="null: constant learning rate; {}: cosine")
    early_stopping: EarlyStopping | None = Field(None, description="null: train every epoch; {}: patience 15")
    channels_last: bool = Field(True, description="memory format (changes the last bits)")
    amp: bool = Field(False, description="mixed precision (bf16 on CPU, fp16 on CUDA)")
    deterministic: bool = Field(
        False, description="CUDA: deterministic cuDNN/cuBLAS kernels, so a GPU run repeats exactly; slower")
    compile: bool = Field(False, description="torch.compile the model")
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = Field(
        "default", description="torch.compile mode; reduce-overhead and max-autotune use CUDA graphs on a GPU")
    threads: Annotated[int, Field(ge=1)] | None = Field(
        None, description="torch threads per run (default: 1 with numerics portable, all cores with native)")
    numerics: Literal["portable", "native"] = Field(
        "portable", description="portable: CPU kernels capped at AVX2, oneDNN off, fixed threads: the same bits on any "
        "x86-64 machine; native: the machine's fastest kernels (docs/reproducibility.md)")


class Tune(Section):
    trials: int = Field(8, ge=1, le=1000, description="trials per method and fold (the budget; each is a training run)")
    sampler: Literal["tpe", "random", "grid"] = Field("tpe", description="Optuna sampler")
    seed: Seed = Field(0, description="sampler seed")
    space: Annotated[dict, checked(_space_check)] = Field(
        default_factory=dict, description="extra or overriding search dimensions: train.* keys for every method, METHOD.PARAM")


class Ray(Section):
    address: str | None = Field(None, description="a running Ray cluster (default: start one on this machine)")
    num_cpus_per_run: float = Field(1.0, gt=0, description="CPUs reserved per run")
    num_gpus_per_run: float = Field(0.0, ge=0, description="GPUs reserved per run (fractions share a GPU)")
    max_retries: int = Field(1, ge=0, description="retries of a run whose worker died")


class Run(Section):
    executor: Literal["local", "ray"] = Field("local", description="local, or ray (see cluster.md)")
    workers: Annotated[int | str, PlainValidator(_workers)] = Field(
        1, description="local executor: runs trained at once, or 'auto' (cores ÷ train.threads)")
    device: Annotated[str, checked(_device_check)] = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    output: str | None = Field(None, description="default runs/<name>: records, checkpoints, logs, results.csv")
    trackers: list[Literal["mlflow", "tensorboard"]] = Field(
        default_factory=list, description="also log every run to MLflow and/or TensorBoard (optional extras)")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI (default: an SQLite store in the output folder)")
    ray: Ray = Field(default_factory=Ray, description="the ray executor")


class Experiment(Section):
    """A whole experiment file; `source` and `folder` say where it was read from (error messages, relative paths)."""

    name: Annotated[str, checked(_name_check)] = Field(
        description="experiment name (used for output and report folders): a plain name, no path separators")
    plugins: list = Field(default_factory=list, description="modules or .py files that register more methods")
    data: Data = Field(description="the images and how they are read")
    protocol: Protocol = Field(default_factory=Protocol, description="the folds every run shares")
    train: Train = Field(default_factory=Train, description="training settings")
    methods: Annotated[list, checked(_methods_check)] = Field(
        description="names or {name, PARAM: value | [grid values]}; a list value is a grid")
    backbones: Annotated[list, checked(_backbones_check)] = Field(
        description="names or {name, weights: local file}; any timm model as timm:NAME")
    seeds: Annotated[list, checked(_seed_list)] = Field(default_factory=lambda: [0], description="training seeds")
    tune: Tune | None = Field(None, description="hyper-parameter search; null: off, {}: the defaults")
    run: Run = Field(default_factory=Run, description="where and how runs execute; never part of a run id")

    _source: str = PrivateAttr("<experiment>")
    _folder: Path = PrivateAttr(default_factory=Path.cwd)

    @property
    def source(self) -> str:
        """The experiment file (or what stands for it), the prefix of every error message about the config."""
        return self._source

    @property
    def folder(self) -> Path:
        """The folder plugins and weights files are relative to."""
        return self._folder

    def located(self, source: str, folder: Path) -> Experiment:
        """A copy that says it was read from `source`, with relative paths resolving in `folder`."""
        copy = self.model_copy()
        copy._source, copy._folder = source, Path(folder)
        return copy

    def replace(self, **sections: Section | Any) -> Experiment:
        """A copy with top-level values replaced (not validated again: pass validated sections)."""
        return self.model_copy(update=sections)

    def backbone_names(self) -> list[str]:
        return [b if isinstance(b, str) else b["name"] for b in self.backbones]

    def method_entries(self) -> list[MethodEntry]:
        """`methods:` parsed into typed entries (the one parser of a method entry)."""
        return [MethodEntry.parse(i, entry) for i, entry in enumerate(self.methods)]

    def method_names(self) -> list[str]:
        return [entry.name for entry in self.method_entries()]


_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping"}


def unwrap(field: FieldInfo) -> tuple[Any, bool, list]:
    """(the value's type, whether null is allowed, its constraints): `Annotated[int, Field(ge=4)] | None` →
    (int, True, [Ge(4)])."""
    annotation, metadata, nullable = field.annotation, list(field.metadata), False
    if get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(annotation):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        annotation, nullable = (rest[0] if len(rest) == 1 else Union[tuple(rest)]), True  # noqa: UP007
    if get_origin(annotation) is Annotated:
        annotation, *extra = get_args(annotation)
        for item in extra:
            metadata += item.metadata if isinstance(item, FieldInfo) else [item]
    return annotation, nullable, metadata


def section_of(annotation: Any) -> type[Section] | None:
    """The section model a key holds, or None for a plain value."""
    return annotation if isinstance(annotation, type) and issubclass(annotation, Section) else None


def choices(annotation: Any) -> tuple[str, ...] | None:
    """The allowed values of a Literal key (or of each item of a list of Literals)."""
    if get_origin(annotation) is list and get_args(annotation):
        annotation = get_args(annotation)[0]
    return tuple(map(str, get_args(annotation))) if get_origin(annotation) is Literal else None


def describe(field: FieldInfo) -> str:
    """What a key accepts, in the words of the error messages: 'an integer or null', 'a list of hflip | vflip'."""
    annotation, nullable, _ = unwrap(field)
    if section_of(annotation):
        return "a mapping"
    allowed = choices(annotation)
    if allowed:
        text = ("a list of " if get_origin(annotation) is list else "") + " | ".join(allowed)
    elif get_origin(annotation) in (Union, types.UnionType):
        text = " or ".join(_TYPE_NAMES[a] for a in get_args(annotation))
    else:
        text = _TYPE_NAMES[get_origin(annotation) or annotation]
    return text + (" or null" if nullable else "")


def bounds(field: FieldInfo) -> str | None:
    """A number key's range as the error messages say it: 'must be ≥ 2', 'must be in (0, 1)', 'must be in 0..9'."""
    limits: dict[str, Any] = {}
    for item in unwrap(field)[2]:
        for name in ("ge", "gt", "le", "lt"):
            if getattr(item, name, None) is not None:
                limits[name] = getattr(item, name)
    if "gt" in limits and "lt" in limits:
        return f"must be in ({limits['gt']}, {limits['lt']})"
    if "ge" in limits and "le" in limits:
        return f"must be in {limits['ge']}..{limits['le']}"
    if "ge" in limits:
        return f"must be ≥ {limits['ge']}"
    if "gt" in limits:
        return f"must be > {limits['gt']}"
    return None


class RunOutput(Section):
    """Only run.output of a `run` section: the rest is not looked at."""

    model_config = ConfigDict(extra="ignore")
    output: str | None = Run.model_fields["output"]


class OutputRef(Section):
    """Only what names an experiment's output folder (name, run.output): `report` reads an experiment file with this,
    without its data or any other key."""

    model_config = ConfigDict(extra="ignore")
    name: str = Experiment.model_fields["name"]
    run: RunOutput = Field(default_factory=RunOutput)
