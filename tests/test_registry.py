"""The generic `Registry` methods and backbones share, the backbone specs, and `methods` standing without `benchmark`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import methods
from benchmark.errors import UserError
from methods.backbones import BACKBONES, BackboneSpec, backbone_spec, register_backbone
from methods.registry import METHODS
from methods.registry_core import Registry


@pytest.fixture
def colours() -> Registry[int]:
    registry: Registry[int] = Registry("colour", describe=lambda value: f"value {value}", unknown_note=" (or a hex code)")
    for name, value in (("red", 1), ("green", 2), ("grey", 3)):
        registry.register(name, value)
    return registry


def test_a_taken_name_is_refused_naming_who_holds_it(colours):
    with pytest.raises(ValueError, match="colour 'red' is already registered by value 1"):
        colours.register("red", 9)
    assert colours.get("red") == 1


def test_an_unknown_name_is_a_user_error_with_a_hint(colours):
    with pytest.raises(UserError, match=r"^unknown colour 'greeen'; did you mean green, grey\? \(or a hex code\)$"):
        colours.get("greeen")
    with pytest.raises(UserError, match=r"^unknown colour 'blue'; registered: green, grey, red \(or a hex code\)$"):
        colours.get("blue")
    assert colours.find("blue") is None and colours.find("grey") == 3
    assert "red" in colours and "blue" not in colours


def test_names_are_sorted_and_filtered_by_an_fnmatch_pattern(colours):
    assert colours.names() == ["green", "grey", "red"]
    assert colours.names("gr*") == ["green", "grey"]
    assert colours.names("G*") == []  # case-sensitive, like the method and backbone lists
    assert colours.names("?ed") == ["red"]


def test_restore_rolls_back_to_a_snapshot(colours):
    saved = colours.snapshot()
    colours.register("blue", 4)
    saved["bogus"] = 0  # a snapshot is a copy: changing it changes nothing
    assert colours.names() == ["blue", "green", "grey", "red"]
    colours.restore(saved)
    assert colours.names() == ["bogus", "green", "grey", "red"]


def test_builtins_register_on_first_use_once(tmp_path, monkeypatch):
    registry: Registry[str] = Registry("thing", builtins=("registry_builtins_for_test",))
    holder = type(sys)("registry_holder_for_test")
    holder.registry, holder.imports = registry, 0
    monkeypatch.setitem(sys.modules, holder.__name__, holder)
    (tmp_path / "registry_builtins_for_test.py").write_text(
        "import registry_holder_for_test as h\nh.imports += 1\nh.registry.register('builtin', 'b')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert holder.imports == 0
    with pytest.raises(ValueError, match="thing 'builtin' is already registered"):
        registry.register("builtin", "mine")  # built-ins load before the first registration
    registry.register("mine", "a")
    assert registry.names() == ["builtin", "mine"] and holder.imports == 1
    sys.modules.pop("registry_builtins_for_test")


def test_every_public_name_of_methods_loads():
    assert sorted(methods.__all__) == sorted(methods._HOMES) == sorted(set(dir(methods)) & set(methods._HOMES))
    assert all(callable(getattr(methods, name)) for name in methods.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        methods.nope  # noqa: B018


def test_methods_and_backbones_use_the_generic_registry():
    assert isinstance(METHODS, Registry) and isinstance(BACKBONES, Registry)
    assert METHODS.names() == methods.list_methods() and BACKBONES.names() == methods.list_backbones()
    assert METHODS.get("focal").cls.__name__ == "Focal"


def _imported_after(code: str) -> dict[str, list[str]]:
    """The `benchmark` modules and heavy libraries a fresh interpreter has imported after running `code`."""
    probe = (f"import json, sys; {code}; mods = sorted(sys.modules); print(json.dumps({{"
             "'benchmark': [n for n in mods if n.split('.')[0] == 'benchmark'], "
             "'heavy': [n for n in ('torch', 'timm', 'torchvision') if n in mods]}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_methods_imports_nothing_of_the_benchmark():
    assert _imported_after("import methods, methods.errors") == {"benchmark": [], "heavy": []}
    used = _imported_after("import methods; methods.build('ce'); methods.build_backbone('tiny_cnn', 2, 8); "
                           "methods.list_backbones(); methods.method_info('focal')")
    assert used["benchmark"] == [] and "torch" in used["heavy"]


def test_benchmark_user_error_is_the_error_methods_raise():
    from methods.errors import UserError as MethodsUserError

    assert UserError is MethodsUserError
    with pytest.raises(UserError, match="unknown method"):
        methods.build("no_such_method")


# --- backbone specs -------------------------------------------------------------------------------------------------

LIGHT = ["tiny_cnn", "small_cnn", "resnet18", "googlenet", "seresnet18", "ecaresnet26t", "cbam_resnet18"]


@pytest.mark.parametrize("name", LIGHT + [pytest.param(n, marks=pytest.mark.slow) for n in ("resnet50", "vgg16")])
def test_the_registered_feature_layer_outputs_forward_features(name):
    spec = backbone_spec(name)
    torch.manual_seed(0)
    model = methods.build_backbone(name, 2, 64).eval()
    seen = []
    handle = model.get_submodule(spec.feature_layer).register_forward_hook(lambda _m, _i, out: seen.append(out))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
    handle.remove()
    assert torch.equal(seen[-1], features)
    model.get_submodule(spec.cam_layer)


def test_specs_carry_the_layers_and_the_transformers_have_none():
    assert (backbone_spec("vgg16").feature_layer, backbone_spec("vgg16").cam_layer) == ("net.features", "net.features.29")
    assert backbone_spec("resnet50").cam_layer == "net.layer4" and backbone_spec("googlenet").cam_layer == "net.inception5b"
    for name in ("vit_tiny", "swin_tiny"):
        assert (backbone_spec(name).feature_layer, backbone_spec(name).cam_layer) == (None, None)
    assert backbone_spec("timm:resnet10t") is None and backbone_spec("resnet19") is None
    assert isinstance(backbone_spec("tiny_cnn"), BackboneSpec)


def test_a_backbone_declaring_a_layer_it_lacks_is_refused(isolated_registries):
    @register_backbone("tiny_wrong_layer", min_image_size=8, feature_layer="no.such", citation="test")
    def tiny_wrong_layer(num_classes: int, image_size: int):
        """Tiny CNN with a wrong layer name."""
        return methods.build_backbone("tiny_cnn", num_classes, image_size)

    with pytest.raises(UserError, match="backbone 'tiny_wrong_layer' declares feature_layer 'no.such'"):
        methods.build_backbone("tiny_wrong_layer", 2, 8)
    with pytest.raises(ValueError, match="reserved prefix 'timm:'"):
        register_backbone("timm:mine")(tiny_wrong_layer)
    with pytest.raises(ValueError, match="backbone 'tiny_cnn' is already registered by methods.zoo.tiny_cnn"):
        register_backbone("tiny_cnn")(tiny_wrong_layer)


def test_cam_target_comes_from_the_spec_and_timm_names_are_derived(isolated_registries):
    from benchmark.explain.cams import cam_target

    @register_backbone("tiny_cam_test", min_image_size=8, feature_layer="features", cam_layer="features.2",
                       citation="test")
    def tiny_cam_test(num_classes: int, image_size: int):
        """Tiny CNN whose maps come from its second block."""
        return methods.build_backbone("tiny_cnn", num_classes, image_size)

    model = methods.build_backbone("tiny_cam_test", 2, 16)
    target = cam_target(model, "tiny_cam_test", 16)
    assert (target.path, target.rule) == ("features.2", "table") and target.layer is model.features[2]
    small = methods.build_backbone("small_cnn", 2, 16)
    assert (cam_target(small, "small_cnn", 16).path, cam_target(small, "small_cnn", 16).rule) == ("features", "table")
    timm_cnn = methods.build_backbone("timm:resnet10t", 2, 32)
    assert cam_target(timm_cnn, "timm:resnet10t", 32).rule == "hook"
