from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.config import load_config
from benchmark.errors import UserError
from tests.helpers import write_config


def test_defaults_filled_and_root_resolved(tmp_path, image_folder):
    cfg = load_config(write_config(tmp_path / "e.yaml", image_folder))
    assert cfg.protocol.select_by == "val_f1"
    assert cfg.train.optimizer.weight_decay == 1e-3
    assert Path(cfg.data.root) == image_folder.resolve()
    assert cfg.run.executor == "local"


def test_relative_root_resolves_against_experiment_file(tmp_path, image_folder, monkeypatch):
    monkeypatch.chdir("/")
    cfg = load_config(write_config(tmp_path / "e.yaml", "data"))
    assert Path(cfg.data.root) == image_folder.resolve()


@pytest.mark.parametrize(
    "sections, message",
    [
        ({"train": {"epoch": 3}}, "unknown key train.epoch (did you mean 'epochs'?)"),
        ({"train": {"epochs": "ten"}}, "train.epochs: expected an integer, got 'ten'"),
        ({"protocol": {"folds": 1}}, "protocol.folds: must be ≥ 2"),
        ({"protocol": {"val_fraction": 1.5}}, "protocol.val_fraction: must be in (0, 1)"),
        ({"protocol": {"select_by": "val_f2"}}, "did you mean 'val_f1'?"),
        ({"run": {"device": "gpu"}}, "run.device"),
        ({"data": {"augment": ["hflp"]}}, "did you mean 'hflip'?"),
        ({"train": {"compile_mode": "reduce_overhead"}}, "did you mean 'reduce-overhead'?"),
        ({"methods": []}, "methods: must list at least one method"),
        ({"bogus": 1}, "unknown key bogus"),
        ({"protocol": {"group_by": "(unclosed"}}, "protocol.group_by: not a valid regular expression"),
        ({"protocol": {"group_by": "normal_b"}}, "needs one capturing group"),
    ],
)
def test_bad_values_give_one_line_naming_file_and_key(tmp_path, image_folder, sections, message):
    path = write_config(tmp_path / "e.yaml", image_folder, **sections)
    with pytest.raises(UserError) as err:
        load_config(path)
    text = str(err.value)
    assert message in text
    assert str(path) in text
    assert "\n" not in text


def test_overrides_are_typed_and_validated(tmp_path, image_folder):
    path = write_config(tmp_path / "e.yaml", image_folder)
    cfg = load_config(path, ["train.epochs=7", "data.image_size=24"])
    assert cfg.train.epochs == 7 and cfg.data.image_size == 24
    with pytest.raises(UserError, match="did you mean 'epochs'"):
        load_config(path, ["train.epochz=7"])
    with pytest.raises(UserError, match="expected KEY.PATH=VALUE"):
        load_config(path, ["train.epochs"])


def test_missing_data_says_where_it_looked_and_how_to_get_it(tmp_path):
    path = write_config(tmp_path / "e.yaml", "no-such-folder")
    with pytest.raises(UserError) as err:
        load_config(path)
    assert "looked in" in str(err.value) and "solder-joint-dataset" in str(err.value) and "quick.yaml" in str(err.value)


def test_malformed_yaml_exit_code_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndata: [unclosed\n")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "malformed YAML at line" in err and len(err.splitlines()) == 1


def test_shipped_experiments_validate_and_plan(tmp_path, monkeypatch):
    """Every shipped experiment plans and passes the pre-flight checks: on the real data where it is here, else on a
    small stand-in with the real folder names ($SOLDERBENCH_DATA)."""
    from benchmark.runner import check_sweep, open_sweep
    from tests.helpers import make_image_folder

    names = ["normal", "excessive_solder", "insufficient_solder", "shifted_component", "short"]
    monkeypatch.setenv("SOLDERBENCH_DATA", str(make_image_folder(tmp_path / "solder-joint-dataset",
                                                                  dict.fromkeys(names, 30), size=32)))
    root = Path(__file__).resolve().parent.parent / "experiments"
    planned = {}
    for path in sorted(root.glob("*.yaml")):
        cfg = load_config(path, ["train.epochs=1"])
        sweep = open_sweep(cfg, decode_images=False)
        check_sweep(sweep)
        planned[path.name] = len(sweep.runs)
    assert planned["solder.yaml"] == 540 and planned["quick.yaml"] == 30
    assert planned["solder-defects-cpu.yaml"] == planned["solder-binary-cpu.yaml"] == 50
    assert len(planned) == len(list(root.glob("*.yaml")))


def test_exponent_without_dot_is_a_number(tmp_path, image_folder):
    path = write_config(tmp_path / "e.yaml", image_folder)
    path.write_text(path.read_text().replace("lr: 0.01", "lr: 5e-3"))
    assert load_config(path).train.optimizer.lr == 0.005
    assert load_config(path, ["train.optimizer.lr=2E-4"]).train.optimizer.lr == 0.0002


def _float_keys(section, path: str = "") -> list[str]:
    from benchmark.experiment import section_of, unwrap

    keys = []
    for key, field in section.model_fields.items():
        dotted = f"{path}.{key}" if path else key
        kind = unwrap(field)[0]
        if section_of(kind):
            keys += _float_keys(kind, dotted)
        elif kind is float:
            keys.append(dotted)
    return keys


def _one_error_line(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1e999"])
def test_every_float_key_refuses_non_finite_numbers(tmp_path, image_folder, capsys, value):
    from benchmark.experiment import Experiment

    path = write_config(tmp_path / "e.yaml", image_folder, run={"output": str(tmp_path / "out"), "device": "cpu"})
    keys = _float_keys(Experiment)
    assert {"train.optimizer.lr", "train.scheduler.gamma", "run.ray.num_gpus_per_run"} <= set(keys)
    for key in keys:
        line = _one_error_line(["run", str(path), "--set", f"{key}={value}"], capsys)
        assert key in line and "must be a finite number" in line, line
    assert not (tmp_path / "out").exists()


def test_seeds_are_numpy_seeds(tmp_path, image_folder, capsys):
    path = write_config(tmp_path / "e.yaml", image_folder, run={"output": str(tmp_path / "out"), "device": "cpu"})
    for override, words in [("data.synthetic.seed=-3", ["data.synthetic.seed", "0..4294967295"]),
                            ("protocol.seed=4294967295", ["protocol.seed", "0..4294967 ", "protocol.folds=3"]),
                            ("seeds=[1, 4294967296]", ["seeds", "0..4294967295"])]:
        line = _one_error_line(["run", str(path), "--set", override], capsys)
        assert all(word in line for word in words), line
    cfg = load_config(path, ["protocol.seed=4294967", "seeds=[0, 4294967295]", "data.synthetic.seed=4294967295"])
    assert cfg.protocol.seed == 4294967 and cfg.seeds == [0, 4294967295]
    assert not (tmp_path / "out").exists()


def test_a_key_given_twice_in_a_set_value_is_refused(tmp_path, image_folder, capsys):
    path = write_config(tmp_path / "e.yaml", image_folder, run={"output": str(tmp_path / "out"), "device": "cpu"})
    line = _one_error_line(["run", str(path), "--set", "train={epochs: 1, epochs: 2}"], capsys)
    assert "--set" in line and "key 'epochs' is given twice" in line
    assert not (tmp_path / "out").exists()


def test_merge_keys_are_not_duplicates(tmp_path, image_folder):
    path = write_config(tmp_path / "e.yaml", image_folder)
    text = path.read_text().replace("train:\n", "fast: &fast {epochs: 1, batch_size: 8}\ntrain:\n  <<: *fast\n", 1)
    path.write_text(text.replace("fast: &fast", "x-fast: &fast"))
    with pytest.raises(UserError, match="unknown key x-fast"):
        load_config(path)


def test_configuration_page_key_reference_is_generated_from_the_models():
    """docs/configuration.md lists every key of the models with its default and bounds; editing a model without
    regenerating the page (python scripts/config_doc.py) fails here."""
    import importlib.util

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("config_doc", root / "scripts" / "config_doc.py")
    config_doc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(config_doc)
    page = (root / "docs" / "configuration.md").read_text()
    assert config_doc.rendered(page) == page, "docs/configuration.md is stale: run python scripts/config_doc.py"
    assert "| `train.optimizer.lr` | `0.0001` | a number; must be > 0 |" in page
    assert "| `tune.space` |" in page and "| `run.ray.max_retries` | `1` |" in page


def test_config_is_typed_frozen_and_pickles_with_its_source(tmp_path, image_folder):
    """The config is a frozen model (not a dict); where it came from travels with it to worker processes."""
    import pickle

    from pydantic import ValidationError

    path = write_config(tmp_path / "e.yaml", image_folder)
    cfg = load_config(path, ["train.scheduler={}", "train.optimizer.weight_decay=0"])
    assert cfg.train.scheduler.name == "cosine" and cfg.train.scheduler.step_size == 30
    assert cfg.train.early_stopping is None and cfg.tune is None
    assert isinstance(cfg.train.optimizer.weight_decay, float)
    with pytest.raises(ValidationError):
        cfg.train.epochs = 3
    again = pickle.loads(pickle.dumps(cfg))
    assert again == cfg and again.source == str(path) and again.folder == tmp_path.resolve()


def test_run_report_and_explain_mean_the_same_output_folder(tmp_path, image_folder, monkeypatch):
    """One rule for an experiment's output folder: run.output, else runs/<name> in the working directory."""
    from benchmark.config import output_of

    monkeypatch.chdir(tmp_path)
    unset = write_config(tmp_path / "a.yaml", image_folder, run={"output": None, "device": "cpu"})
    given = write_config(tmp_path / "b.yaml", image_folder, run={"output": str(tmp_path / "elsewhere")})
    for path in (unset, given):
        assert output_of(path) == (Path(load_config(path).run.output), path)
    assert output_of(unset)[0] == Path("runs/t")
    assert output_of(tmp_path) == (tmp_path, None)
    with pytest.raises(UserError, match="no such experiment file or output folder"):
        output_of(tmp_path / "missing.yaml")


def test_an_error_about_the_data_names_the_file_once(tmp_path, capsys):
    """A protocol problem found while splitting gets the experiment file in front exactly once."""
    from tests.conftest import make_image_folder

    folder = make_image_folder(tmp_path / "data", {"normal": 12, "defective": 2})
    path = write_config(tmp_path / "e.yaml", folder)
    line = _one_error_line(["run", str(path)], capsys)
    assert line.startswith(f"error: {path}: class 'defective' has 2 image(s)") and line.count(str(path)) == 1
