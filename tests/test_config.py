from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.config import load_config
from benchmark.errors import UserError
from tests.conftest import write_config


def test_defaults_filled_and_root_resolved(tmp_path, image_folder):
    cfg = load_config(write_config(tmp_path / "e.yaml", image_folder))
    assert cfg["protocol"]["select_by"] == "val_f1"
    assert cfg["train"]["optimizer"]["weight_decay"] == 1e-3
    assert Path(cfg["data"]["root"]) == image_folder.resolve()
    assert cfg["run"]["executor"] == "local"


def test_relative_root_resolves_against_experiment_file(tmp_path, image_folder, monkeypatch):
    monkeypatch.chdir("/")
    cfg = load_config(write_config(tmp_path / "e.yaml", "data"))
    assert Path(cfg["data"]["root"]) == image_folder.resolve()


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
    assert cfg["train"]["epochs"] == 7 and cfg["data"]["image_size"] == 24
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


def test_shipped_experiments_validate_and_plan():
    from benchmark.plan import expand_backbones, expand_methods

    root = Path(__file__).resolve().parent.parent / "experiments"
    for path in sorted(root.glob("*.yaml")):
        try:
            cfg = load_config(path)
        except UserError as exc:
            assert "data.root" in str(exc), f"{path}: {exc}"
            continue
        assert expand_methods(cfg["methods"], str(path))
        assert expand_backbones(cfg["backbones"], str(path), path.parent)


def test_exponent_without_dot_is_a_number(tmp_path, image_folder):
    path = write_config(tmp_path / "e.yaml", image_folder)
    path.write_text(path.read_text().replace("lr: 0.01", "lr: 5e-3"))
    assert load_config(path)["train"]["optimizer"]["lr"] == 0.005
    assert load_config(path, ["train.optimizer.lr=2E-4"])["train"]["optimizer"]["lr"] == 0.0002
