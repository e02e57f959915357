"""The method registry and every objective, checked against independent float64 NumPy/SciPy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial.distance import jensenshannon
from scipy.special import log_softmax, softmax
from scipy.stats import entropy

import methods
from benchmark.errors import UserError
from methods.alpha_js import skew_js_to_uniform

KS = (2, 5, 37)
TOL = 1e-6


def batch(k: int, n: int = 8, scale: float = 3.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + k)
    logits = rng.normal(scale=scale, size=(n, k))
    targets = rng.integers(0, k, size=n)
    targets[:2] = [0, 1]  # at least two different labels
    return logits, targets


def torch_loss(name: str, logits: np.ndarray, targets: np.ndarray, **params) -> float:
    loss = methods.build(name, **params)(torch.from_numpy(logits), torch.from_numpy(targets))
    assert loss.dim() == 0 and loss.dtype == torch.float64
    return loss.item()


def np_ce_rows(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    return -log_softmax(logits, axis=1)[np.arange(len(targets)), targets]


def np_entropy(logits: np.ndarray) -> np.ndarray:
    return entropy(softmax(logits, axis=1), axis=1)


def np_skew_js(logits: np.ndarray, alpha: float) -> np.ndarray:
    """[H(m) - (1-α)H(u) - αH(p)] / (α(1-α)), straight from the definition."""
    p = softmax(logits, axis=1)
    k = p.shape[1]
    m = (1 - alpha) / k + alpha * p
    return (entropy(m, axis=1) - (1 - alpha) * math.log(k) - alpha * entropy(p, axis=1)) / (alpha * (1 - alpha))


# --- registry -------------------------------------------------------------------------------------------------


def test_builtins_registered_and_listed_with_wildcards():
    expected = {"ce", "label_smoothing", "confidence_penalty", "max_entropy", "alpha_js", "focal",
                "pairwise_confusion", "bilinear"}
    assert expected <= set(methods.list_methods())
    assert methods.list_methods() == sorted(methods.list_methods())
    assert methods.list_methods("*_js") == ["alpha_js"]
    assert methods.list_methods("no_such*") == []


def test_method_info():
    info = methods.method_info("alpha_js")
    assert info["name"] == "alpha_js"
    assert info["params"] == {"alpha": ("float", 0.5), "beta": ("float", 1.0),
                              "variant": ("'correct' | 'reference'", "correct")}
    assert info["description"].startswith("Cross-entropy plus beta")
    assert "Ulger" in info["citation"]
    assert methods.method_info("confidence_penalty")["params"]["threshold"] == ("float | None", None)
    assert methods.method_info("ce")["params"] == {}


def test_build_returns_method_with_resolved_params():
    method = methods.build("alpha_js", alpha=0.3, beta=1)
    assert isinstance(method, methods.Method)
    assert method.hparams == {"alpha": 0.3, "beta": 1.0, "variant": "correct"}
    assert type(method.hparams["beta"]) is float
    assert methods.resolve_params("focal", {}) == {"gamma": 2.0}


def test_unknown_method_suggests_close_names():
    with pytest.raises(UserError, match="unknown method 'alpha_jss'.*alpha_js"):
        methods.build("alpha_jss")


@pytest.mark.parametrize("params, pattern", [
    ({"gamma": 1.0}, r"no parameter 'gamma'.*alpha: float = 0.5.*beta: float = 1.0"),
    ({"alpha": "0.3"}, r"parameter 'alpha' must be float, got str '0.3'.*allowed"),
    ({"alpha": True}, r"parameter 'alpha' must be float, got bool"),
    ({"alpha": float("nan")}, r"parameter 'alpha' must be float"),
    ({"variant": "other"}, r"parameter 'variant' must be 'correct' \| 'reference'"),
])
def test_bad_parameters_name_the_parameter(params, pattern):
    with pytest.raises(UserError, match=pattern):
        methods.build("alpha_js", **params)


def test_int_only_params_reject_floats():
    with pytest.raises(UserError, match=r"parameter 'reduce_dim' must be int \| None, got float 2.0"):
        methods.build("bilinear", reduce_dim=2.0)
    assert methods.build("bilinear", reduce_dim=np.int64(3)).hparams == {"reduce_dim": 3}


@pytest.mark.parametrize("name, params", [
    ("alpha_js", {"alpha": 0}), ("alpha_js", {"alpha": 1}), ("alpha_js", {"alpha": 1.5}),
    ("alpha_js", {"beta": -0.1}), ("label_smoothing", {"epsilon": 1}), ("label_smoothing", {"epsilon": -0.1}),
    ("confidence_penalty", {"beta": -1}), ("confidence_penalty", {"threshold": -0.5}), ("max_entropy", {"gamma": -1}),
    ("focal", {"gamma": -2}), ("pairwise_confusion", {"lambda_": -0.1}), ("bilinear", {"reduce_dim": 0}),
])
def test_out_of_range_values_are_refused(name, params):
    (key, value), = params.items()
    with pytest.raises(UserError, match=f"method '{name}': {key} must be .*got {value}"):
        methods.build(name, **params)


def test_boundary_values_are_accepted():
    methods.build("label_smoothing", epsilon=0)
    methods.build("alpha_js", alpha=1e-4, beta=0)
    methods.build("confidence_penalty", threshold=0.0)


def test_register_returns_class_unchanged_and_rejects_duplicates(isolated_registries):
    class Extra(methods.Method):
        """An extra method."""

        citation = "none"

        def __init__(self, weight: float = 1.0, mode: str = "a"):
            super().__init__()
            self.weight = weight

        def forward(self, logits, targets):
            return self.weight * F.cross_entropy(logits, targets)

    assert methods.register_method("extra_test")(Extra) is Extra
    assert methods.method_info("extra_test")["params"] == {"weight": ("float", 1.0), "mode": ("str", "a")}
    with pytest.raises(ValueError, match="already registered"):
        methods.register_method("extra_test")(Extra)
    with pytest.raises(ValueError, match="already registered"):
        methods.register_method("ce")(Extra)


def test_register_rejects_untyped_or_defaultless_params(isolated_registries):
    class NoDefault(methods.Method):
        """No default."""

        citation = "none"

        def __init__(self, weight: float):
            super().__init__()

    class NoCitation(methods.Method):
        """No citation."""

    with pytest.raises(TypeError, match="annotation and a default"):
        methods.register_method("no_default")(NoDefault)
    with pytest.raises(TypeError, match="citation"):
        methods.register_method("no_citation")(NoCitation)
    assert "no_default" not in methods.list_methods()


# --- objectives against NumPy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("k", KS)
def test_ce(k):
    logits, targets = batch(k)
    assert torch_loss("ce", logits, targets) == pytest.approx(np_ce_rows(logits, targets).mean(), abs=TOL)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.4])
def test_label_smoothing(k, epsilon):
    logits, targets = batch(k)
    smoothed = (1 - epsilon) * np_ce_rows(logits, targets) - epsilon * log_softmax(logits, axis=1).mean(axis=1)
    value = torch_loss("label_smoothing", logits, targets, epsilon=epsilon)
    assert value == pytest.approx(smoothed.mean(), abs=TOL)
    reference = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(targets), label_smoothing=epsilon)
    assert value == pytest.approx(reference.item(), abs=1e-12)


@pytest.mark.parametrize("k", KS)
def test_confidence_penalty_and_max_entropy(k):
    logits, targets = batch(k)
    ce, h = np_ce_rows(logits, targets), np_entropy(logits)
    assert torch_loss("confidence_penalty", logits, targets, beta=0.3) == pytest.approx((ce - 0.3 * h).mean(), abs=TOL)
    assert torch_loss("max_entropy", logits, targets, gamma=0.7) == pytest.approx((ce - 0.7 * h).mean(), abs=TOL)
    threshold = float(np.median(h))
    hinge = ce + 0.3 * np.maximum(0.0, threshold - h)
    value = torch_loss("confidence_penalty", logits, targets, beta=0.3, threshold=threshold)
    assert value == pytest.approx(hinge.mean(), abs=TOL)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("alpha", [0.1, 0.5, 0.9])
def test_alpha_js_correct(k, alpha):
    logits, targets = batch(k)
    expected = np_ce_rows(logits, targets) + 0.7 * np_skew_js(logits, alpha)
    assert torch_loss("alpha_js", logits, targets, alpha=alpha, beta=0.7) == pytest.approx(expected.mean(), abs=TOL)


@pytest.mark.parametrize("alpha", [0.2, 0.5, 0.8])
def test_alpha_js_reference_reproduces_the_published_script(alpha):
    logits, targets = batch(2)

    def script_entropy(x):  # the script's entropy(): softmax first, then -sum p log p
        p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
        return -(p * np.log(p)).sum(axis=1)

    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    m = (1 - alpha) * 0.5 + alpha * p
    js = (script_entropy(m) - (1 - alpha) * np.log(2) - alpha * script_entropy(logits)) / (alpha * (1 - alpha))
    expected = np_ce_rows(logits, targets) + 1.5 * js
    value = torch_loss("alpha_js", logits, targets, alpha=alpha, beta=1.5, variant="reference")
    assert value == pytest.approx(expected.mean(), abs=TOL)
    correct = torch_loss("alpha_js", logits, targets, alpha=alpha, beta=1.5)
    assert abs(value - correct) > 1e-3  # the second softmax really changes the number


def test_alpha_js_reference_refuses_more_than_two_classes():
    from benchmark.plan import RunSpec
    from benchmark.train.trainer import build_method

    with pytest.raises(UserError, match="variant='reference'.*2 classes, got 5"):
        methods.build("alpha_js", variant="reference").check_task(5)
    spec = RunSpec("r", "t", "alpha_js", {"variant": "reference"}, "tiny_cnn", None, 0, 0, 0)
    with pytest.raises(UserError, match="2 classes, got 5"):  # a run building it checks it once
        build_method(spec, list("abcde"), [1] * 5)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal(k, gamma):
    logits, targets = batch(k)
    log_pt = log_softmax(logits, axis=1)[np.arange(len(targets)), targets]
    expected = -((1 - np.exp(log_pt)) ** gamma) * log_pt
    assert torch_loss("focal", logits, targets, gamma=gamma) == pytest.approx(expected.mean(), abs=TOL)


@pytest.mark.parametrize("k", KS)
def test_pairwise_confusion(k):
    logits, targets = batch(k)
    p = softmax(logits, axis=1)
    distances = [np.sum((p[i] - p[j]) ** 2) for i in range(len(p)) for j in range(i + 1, len(p))
                 if targets[i] != targets[j]]
    expected = np_ce_rows(logits, targets).mean() + 0.4 * np.mean(distances)
    assert torch_loss("pairwise_confusion", logits, targets, lambda_=0.4) == pytest.approx(expected, abs=TOL)


def test_pairwise_confusion_is_ce_when_all_labels_equal():
    logits, _ = batch(5)
    targets = np.full(len(logits), 3)
    value = torch_loss("pairwise_confusion", logits, targets, lambda_=2.0)
    assert value == pytest.approx(np_ce_rows(logits, targets).mean(), abs=TOL)


@pytest.mark.parametrize("k", KS)
def test_bilinear_loss_is_ce(k):
    logits, targets = batch(k)
    assert torch_loss("bilinear", logits, targets) == pytest.approx(np_ce_rows(logits, targets).mean(), abs=TOL)


# --- alpha-skew JS properties -----------------------------------------------------------------------------------


@pytest.mark.parametrize("k", KS)
def test_skew_js_is_nonnegative_and_zero_at_uniform(k):
    logits, _ = batch(k, n=64)
    for alpha in (1e-4, 0.01, 0.3, 0.5, 0.7, 0.99, 1 - 1e-4):
        assert (skew_js_to_uniform(torch.from_numpy(logits), alpha) >= 0).all()
        uniform = torch.full((3, k), 2.5, dtype=torch.float64)
        assert skew_js_to_uniform(uniform, alpha).abs().max().item() < 1e-9


@pytest.mark.parametrize("k", KS)
def test_skew_js_limits_and_midpoint(k):
    logits, _ = batch(k, scale=1.0)  # the α → 1 limit converges like (1-α)/min p, so keep p away from 0
    p = softmax(logits, axis=1)
    u = np.full(k, 1.0 / k)
    x = torch.from_numpy(logits)
    kl_p_u = math.log(k) - entropy(p, axis=1)
    kl_u_p = np.array([entropy(u, row) for row in p])
    np.testing.assert_allclose(skew_js_to_uniform(x, 1e-4).numpy(), kl_p_u, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(skew_js_to_uniform(x, 1 - 1e-4).numpy(), kl_u_p, rtol=1e-3, atol=1e-6)
    four_js = 4 * np.array([jensenshannon(u, row) ** 2 for row in p])
    np.testing.assert_allclose(skew_js_to_uniform(x, 0.5).numpy(), four_js, rtol=0, atol=TOL)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("alpha", [1e-4, 0.5, 1 - 1e-4])
def test_skew_js_float32_is_close_to_float64_reference(k, alpha):
    logits, _ = batch(k)
    value = skew_js_to_uniform(torch.from_numpy(logits).float(), alpha).double().numpy()
    np.testing.assert_allclose(value, np_skew_js(logits, alpha), rtol=0, atol=1e-5)


def saturated(k: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(k)
    signs = torch.randint(0, 2, (6, k), generator=generator) * 2 - 1
    logits = (1e4 * signs).to(dtype).requires_grad_()
    return logits, torch.randint(0, k, (6,), generator=generator)


# Every registered method with its defaults (from the registry, so a new one is covered), plus edge settings.
ALL_PARAMS = [(name, {}) for name in methods.list_methods()] + [
    ("confidence_penalty", {"threshold": 0.5}), ("focal", {"gamma": 0.5}), ("alpha_js", {"alpha": 1e-4}),
    ("alpha_js", {"alpha": 1 - 1e-4}), ("logit_adjustment", {"tau": 2.0}),
]


def prepared_method(name: str, params: dict, k: int):
    """The method as a run builds it: checked against the task, told the (imbalanced) class counts."""
    method = methods.build(name, **params)
    method.check_task(k)
    method.prepare([50] + [1] * (k - 1), [f"c{i}" for i in range(k)])
    return method


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("name, params", ALL_PARAMS)
def test_saturated_logits_give_finite_values_and_gradients(name, params, k, dtype):
    logits, targets = saturated(k, dtype)
    loss = prepared_method(name, params, k)(logits, targets)
    loss.backward()
    assert torch.isfinite(loss).item()
    assert torch.isfinite(logits.grad).all()


def test_reference_variant_is_finite_for_saturated_two_class_logits():
    logits, targets = saturated(2, torch.float32)
    loss = methods.build("alpha_js", alpha=0.5, variant="reference")(logits, targets)
    loss.backward()
    assert torch.isfinite(loss).item() and torch.isfinite(logits.grad).all()


def test_alpha_js_gradient_matches_finite_differences():
    logits = torch.from_numpy(batch(5)[0][:3]).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: skew_js_to_uniform(x, 0.3), (logits,))
