"""Zero-cost proxies: each against an answer worked out by hand, determinism, seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import evaluators as ev
import search_space as ss
from evaluators.proxies import (
    activation_kernel,
    grad_norm,
    gradient_proxies,
    jacob_cov,
    jacob_cov_score,
    naswot,
    snip,
    synflow,
    zen,
)
from evaluators.scores import PROXIES, SCORES
from evaluators.zero_cost import (
    ProxyBatch,
    ZeroCostConfig,
    proxy_batch,
    score_design,
)
from search_space.modules import ResidualPair

# Small and fast: nets built for 32x32 read 8x8 images (plain8 has no down-sampling).
FAST = ZeroCostConfig(dataset="synthetic", batch_size=16, resolution=8, latency_reps=0)
STRUCTURE = ("params", "flops", "width", "non_sparsity", "density", "balance_deviation",
             "theory")


def set_weights(module: nn.Module, *values: list) -> nn.Module:
    """Copy ``values`` into the module's parameters, in order."""
    with torch.no_grad():
        for p, v in zip(module.parameters(), values, strict=True):
            p.copy_(torch.tensor(v, dtype=p.dtype).reshape(p.shape))
    return module


@pytest.fixture(scope="module")
def batch() -> ProxyBatch:
    return proxy_batch(ev.make_synthetic(num_train=200, num_test=10), FAST)


# --- synflow --------------------------------------------------------------------------------


def test_synflow_two_layer_net_by_hand():
    # 1x1 convs on a 1x1 image, BatchNorm and ReLU between: with |weights| and BN removed,
    # R = |c||a| + |d||b| = 3 + 8 = 11, and each layer's sum of theta * dR/dtheta is R
    # (R is linear in each layer's weights): synflow = 2 R.
    net = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.BatchNorm2d(2), nn.ReLU(),
                        nn.Conv2d(2, 1, 1, bias=False))
    set_weights(net[0], [1.0, -2.0])
    set_weights(net[3], [3.0, -4.0])
    assert synflow(net, (1, 1, 1)) == 22.0
    # The model passed in keeps its signs, dtype and BatchNorm.
    assert net[0].weight.flatten().tolist() == [1.0, -2.0]
    assert net[0].weight.dtype == torch.float32 and isinstance(net[1], nn.BatchNorm2d)


def test_synflow_counts_weights_not_biases_and_sees_spatial_flow():
    # 3x3 conv (ones, zero padding) on a 2x2 all-ones image: every output pixel sums 4
    # inputs; GAP then a linear of weight -2 and bias 7. R = 2 * 4 + 7 = 15. Per layer:
    # conv: 9 weights, each used by the pixels it reaches: sum theta dR/dtheta = 2 * 4 = 8;
    # linear weight: |w| * GAP = 2 * 4 = 8; the bias is not scored. synflow = 16.
    net = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, bias=False), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(1, 1))
    set_weights(net[0], [1.0] * 9)
    set_weights(net[3], [-2.0], [7.0])
    assert synflow(net, (1, 2, 2)) == 16.0


def test_synflow_runs_in_float64_beyond_float32_range():
    # 40 layers of weight 100: R = 1e80 (float32 overflows at 3.4e38); synflow = 40 R.
    net = nn.Sequential(*[nn.Linear(1, 1, bias=False) for _ in range(40)])
    for layer in net:
        set_weights(layer, [100.0])
    assert synflow(net, (1,)) == pytest.approx(40e80, rel=1e-12)


# --- NASWOT ---------------------------------------------------------------------------------


def test_activation_kernel_counts_agreements():
    codes = torch.rand(5, 37, generator=torch.Generator().manual_seed(0)) > 0.5
    k = activation_kernel(codes)
    hamming = (codes[:, None, :] != codes[None, :, :]).sum(-1)
    assert torch.equal(k, (37 - hamming).double())


def test_naswot_of_constructed_codes():
    # ReLU of the input itself: codes are the input's signs. Rows (1,-1,1) and (1,1,-1)
    # agree on 1 of 3 units: K = [[3, 1], [1, 3]], det 8. Two ReLUs double K: det 32.
    x = torch.tensor([[1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])
    assert naswot(nn.Sequential(nn.ReLU()), x) == pytest.approx(math.log(8))
    assert naswot(nn.Sequential(nn.ReLU(), nn.ReLU()), x) == pytest.approx(math.log(32))


def test_naswot_counts_post_relu_modules_and_singular_kernels():
    class Relu(nn.Module):  # a module whose output is a ReLU's, as ResidualPair
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(x)

    x = torch.tensor([[1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])
    net = nn.Sequential(nn.ReLU(), Relu())
    assert naswot(net, x) == pytest.approx(math.log(8))
    assert naswot(net, x, post_relu=(Relu,)) == pytest.approx(math.log(32))
    # Equal codes for two images: K singular, log det = -inf.
    same = torch.tensor([[1.0, -1.0], [2.0, -3.0]])
    assert naswot(nn.Sequential(nn.ReLU()), same) == float("-inf")
    with pytest.raises(ValueError, match="no ReLU"):
        naswot(nn.Sequential(nn.Identity()), x)


# --- snip, grad_norm ------------------------------------------------------------------------


def test_snip_and_grad_norm_of_one_linear_layer():
    # W = all ones, x = (2, -4): logits equal, softmax (0.5, 0.5); label 0 gives
    # dL/dz = (-0.5, 0.5) and dL/dW = dL/dz x^T = [[-1, 2], [1, -2]].
    # grad_norm = ||dL/dW|| = sqrt(10); snip = sum |dL/dW * W| = 6.
    net = set_weights(nn.Linear(2, 2, bias=False), [[1.0, 1.0], [1.0, 1.0]])
    x, y = torch.tensor([[2.0, -4.0]]), torch.tensor([0])
    assert grad_norm(net, x, y) == pytest.approx(math.sqrt(10))
    assert snip(net, x, y) == pytest.approx(6.0)
    set_weights(net, [[1.0, -3.0], [0.5, 1.0]])  # logits (14, -3): p = softmax
    p = torch.softmax(torch.tensor([14.0, -3.0]), 0)
    g = (p - torch.tensor([1.0, 0.0]))[:, None] * x
    assert snip(net, x, y) == pytest.approx(float((g * net.weight.detach()).abs().sum()))


def test_grad_norm_sums_layer_norms():
    # Two layers: the sum of each layer's norm, not the norm of all gradients together.
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False))
    set_weights(net[0], [[1.0, 0.0], [0.0, 1.0]])
    set_weights(net[1], [[1.0, 1.0], [1.0, 1.0]])
    x, y = torch.tensor([[2.0, -4.0]]), torch.tensor([0])
    # Layer 2 sees h = x: its gradient is [[-1, 2], [1, -2]] (norm sqrt 10). Layer 1:
    # dL/dh = W2^T (-0.5, 0.5) = (0, 0), so its gradient is zero.
    assert grad_norm(net, x, y) == pytest.approx(math.sqrt(10))


# --- jacob_cov ------------------------------------------------------------------------------


def test_jacob_cov_of_a_linear_map_is_the_worst_score():
    # f(x) = W x: every image's Jacobian of sum(f) is W^T 1, so the correlation matrix is
    # all ones, eigenvalues B and 0 (B - 1 times): -(log(B+k) + 1/(B+k)) - (B-1)(log k + 1/k).
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x = torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    k = 1e-5
    want = -(math.log(4 + k) + 1 / (4 + k)) - 3 * (math.log(k) + 1 / k)
    assert jacob_cov(net, x, k=k) == pytest.approx(want, rel=1e-6)


def test_jacob_cov_score_of_uncorrelated_and_constant_jacobians():
    # Orthogonal zero-mean rows: correlation identity, -(log 1 + 1) per image.
    rows = np.array([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]])
    assert jacob_cov_score(rows, k=0.0) == pytest.approx(-3.0)
    with pytest.raises(FloatingPointError, match="constant"):
        jacob_cov_score(np.array([[1.0, 1.0], [0.0, 2.0]]))


# --- Zen-score ------------------------------------------------------------------------------


def test_zen_without_batchnorm_is_the_perturbation_norm():
    # f = identity, no BatchNorm: Zen = log E ||alpha eps||, eps ~ N(0, I) in D = 3*32*32
    # dimensions, whose norm is sqrt(D) to within 1.3% per image (0.3% over 16).
    got = zen(nn.Identity(), (3, 32, 32), batch_size=16, seed=0, alpha=0.01)
    assert got == pytest.approx(math.log(0.01 * math.sqrt(3 * 32 * 32)), abs=0.02)


def test_zen_batchnorm_correction():
    # f = BN(conv1x1(x)), 3 -> 256 channels, N(0, 1) weights: channel j's pre-BN variance is
    # sum_c w_jc^2 (mean 3 over channels, to within 5%); after BN the perturbation has
    # variance alpha^2 per element, norm alpha sqrt(256 * 32 * 32) = 512 alpha.
    # Zen = log(512 alpha) + log sqrt(3).
    net = nn.Sequential(nn.Conv2d(3, 256, 1, bias=False), nn.BatchNorm2d(256))
    got = zen(net, (3, 32, 32), batch_size=16, seed=0, alpha=0.01)
    assert got == pytest.approx(math.log(5.12) + 0.5 * math.log(3), abs=0.05)
    # Without the BatchNorm correction the score would be log(5.12) (the norm alone).
    assert got - math.log(5.12) > 0.4


def test_zen_does_not_change_the_model():
    net = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    zen(net, (3, 4, 4), batch_size=4, seed=1)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


# --- on designs -----------------------------------------------------------------------------


def test_seeded_build_is_the_training_init():
    # score_design builds impl="reference" after torch.manual_seed(seed), as evaluate() builds
    # the default implementation: the same initial weights.
    d = ss.parse("plain8-c16-k1.4.4")
    torch.manual_seed(3)
    ref = ss.build(d, num_classes=10, impl="reference").state_dict()
    torch.manual_seed(3)
    fast = ss.build(d, num_classes=10).state_dict()
    assert ref.keys() == fast.keys() and all(torch.equal(ref[k], fast[k]) for k in ref)


def test_gradient_proxies_agree_across_block_implementations(batch):
    d = ss.parse("res8-c16-k1.4.4")
    torch.manual_seed(0)
    ref = ss.build(d, num_classes=10, impl="reference")
    fast = ss.build(d, num_classes=10)
    fast.load_state_dict(ref.state_dict())
    a = gradient_proxies(ref, batch.images, batch.labels)
    b = gradient_proxies(fast, batch.images, batch.labels)
    assert a.keys() == {"snip", "grad_norm", "jacob_cov"}
    assert b == pytest.approx(a, rel=1e-5)


def test_naswot_counts_the_residual_relu():
    # res8: a skip every two blocks, its ReLU after the addition (F.relu in ResidualPair).
    torch.manual_seed(0)
    net = ss.build(ss.parse("res8-c16-k1.4.4"), num_classes=10, impl="reference")
    x = torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert naswot(net, x, post_relu=(ResidualPair,)) > naswot(net, x)


def test_proxy_batch_is_fixed_and_recorded():
    data = ev.make_synthetic(num_train=200, num_test=10)
    a, b = proxy_batch(data, FAST), proxy_batch(data, FAST)
    assert a.indices == b.indices and len(a.indices) == 16 and len(set(a.indices)) == 16
    assert torch.equal(a.images, b.images) and a.images.shape == (16, 3, 8, 8)
    assert a.labels.tolist() == data.train_labels[list(a.indices)].tolist()
    other = proxy_batch(data, ZeroCostConfig(batch_size=16, batch_seed=1, resolution=8))
    assert other.indices != a.indices


def test_score_design_is_deterministic_and_seeds_differ(batch):
    d = "plain8-c16-k1.4.4"
    r0, again, r1 = (score_design(d, s, batch, FAST) for s in (0, 0, 1))
    assert list(r0["scores"]) == list(SCORES) and r0["errors"] == {}
    assert r0["scores"] == again["scores"]
    for name in PROXIES:  # every proxy reads the initial weights
        assert r0["scores"][name] != r1["scores"][name], name
    for name in STRUCTURE:  # the design's own numbers do not
        assert r0["scores"][name] == r1["scores"][name], name
    assert r0["scores"]["latency_b1_ms"] is None  # latency_reps=0 skips it
    info = ss.describe(ss.parse(d), num_classes=10)
    assert r0["scores"]["params"] == info["params"] and r0["scores"]["width"] == 16


def test_score_design_measures_latency_and_records_failures(batch, monkeypatch):
    import dataclasses

    from evaluators import proxies

    cfg = dataclasses.replace(FAST, latency_reps=1, latency_warmup=0)
    # The scorer calls the function the registry (evaluators.scores) names, when it scores.
    monkeypatch.setattr(proxies, "naswot_score", lambda inputs: float("-inf"))
    r = score_design("plain8-c16-k1.4.4", 0, batch, cfg)
    assert r["scores"]["latency_b1_ms"] > 0 and r["scores"]["latency_b64_ms"] > 0
    assert r["scores"]["naswot"] is None and "non-finite" in r["errors"]["naswot"]
    assert r["scores"]["synflow"] is not None


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="batch_size=1"):
        ZeroCostConfig(batch_size=1)
    with pytest.raises(ValueError, match="resolution=0"):
        ZeroCostConfig(resolution=0)


# --- the theory scores ----------------------------------------------------------------------


def test_bottleneck_score_references_and_peak():
    q = 4752.0
    c_min, c_max = ss.xception_width(q), ss.widest_width(q)
    assert c_min * (9 + c_min) == pytest.approx(q)
    assert c_max * (9 + math.e * math.log(c_max)) == pytest.approx(q)

    def dense(c: float) -> float:
        return ss.bottleneck_score(c, q / (9 * c * c), 1.0, q)

    assert dense(c_min) == pytest.approx(0.0, abs=1e-12)  # the densest extreme
    assert dense(c_max) == pytest.approx(0.0, abs=1e-12)  # the widest extreme
    peak = math.sqrt(c_min * c_max)  # where w = n = 1/2
    assert dense(peak) == pytest.approx(0.5)
    assert dense(peak * 0.9) < 0.5 and dense(peak * 1.1) < 0.5
    # A composed kernel reaching half the pairs counts as half the non-sparsity.
    wide = 0.9 * c_max
    drop = math.log(2) / (2 * math.log(c_max / c_min))
    assert ss.bottleneck_score(wide, q / (9 * wide**2), 0.5, q) == pytest.approx(
        dense(wide) - drop)


def test_theory_score_is_the_papers_equal_parameter_order():
    # Sec. 3.2: at equal weights the balanced (widest) block is the best -> wider scores
    # higher, with no interior optimum (none in the paper).
    q = 4752.0
    widths = np.linspace(ss.xception_width(q), ss.widest_width(q), 9)
    assert np.all(np.diff([ss.theory_score(c, 1.0) for c in widths]) > 0)
    # Fig. 2: a composed kernel reaching half the pairs counts as half as wide.
    assert ss.theory_score(200, 0.5) == pytest.approx(ss.theory_score(100, 1.0))
    assert ss.theory_score(144, 1.0) == pytest.approx(math.log(144))
    with pytest.raises(ValueError, match="density 0"):
        ss.theory_score(144, 0.0)


# --- the command line -----------------------------------------------------------------------


CLI = ["--designs", "plain8-c16-k1.4.4", "plain8-c16-k1.g1", "--dataset", "synthetic",
       "--resolution", "8", "--batch-size", "16", "--latency-reps", "0"]


def test_cli_writes_records_to_a_store_and_resumes(tmp_path, capsys):
    from analysis import load_results
    from evaluators.record import Result, read_records, trial_key
    from studies.zero_cost import main

    run = tmp_path / "zc"
    assert main([*CLI, "--seeds", "1", "--run-dir", str(run)]) == 0
    first = dict(read_records(run / "records"))
    assert len(first) == 2
    fid = "zc-b16-r8-l0"  # the settings that differ from the defaults name the fidelity
    for design in ("plain8-c16-k1.4.4", "plain8-c16-k1.g1"):
        assert run / "records" / f"{trial_key(design, fid, 'synthetic', 0)}.json" in first
    r = next(r for r in first.values() if r["design_id"] == "plain8-c16-k1.4.4")
    assert r["fidelity"] == fid and r["status"] == "ok" and r["curve"] == []
    assert r["id"] == r["design_id"] and r["params"] == 2842  # describe() keys, flattened
    assert r["fidelity_config"]["name"] == fid
    assert len(r["fidelity_config"]["batch_indices"]) == 16
    assert set(r["zero_cost"]) == {"scores", "seconds", "errors"}
    assert set(r["zero_cost"]["scores"]) == set(SCORES)
    assert Result.from_dict(r).to_dict() == r  # the record owner's layout, nothing else
    # The analysis reads the scores as columns.
    df = load_results(run)
    assert len(df) == 2 and (df["zc_params"] == df["params"]).all()
    assert df["zc_synflow"].notna().all() and df["val_acc"].isna().all()
    # Again with one more seed: only seed 1 is computed; the seed-0 records are kept as is.
    capsys.readouterr()
    assert main([*CLI, "--seeds", "2", "--run-dir", str(run)]) == 0
    second = dict(read_records(run / "records"))
    assert {p: v for p, v in second.items() if p in first} == first
    assert sorted(v["seed"] for v in second.values()) == [0, 0, 1, 1]
    err = capsys.readouterr().err
    assert "2 to score, 2 of 4 recorded already" in err
    # progress: the first of two records estimates the time left, the last has none
    lines = [ln for ln in err.splitlines() if ln.startswith("[")]
    assert len(lines) == 2 and " | left ~" in lines[0] and "left" not in lines[1]


def test_ctrl_c_exits_130_in_one_line_keeping_the_records(tmp_path, capsys, monkeypatch):
    """Ctrl-C (KeyboardInterrupt) while scoring: exit 130 and one line, no traceback; the
    records made before it are kept whole and the same command computes only the rest."""
    from evaluators import zero_cost as zc
    from evaluators.record import read_records
    from studies.zero_cost import main

    real, calls = zc.zc_record, []

    def interrupted_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(zc, "zc_record", interrupted_second)
    run = tmp_path / "zc"
    assert main([*CLI, "--seeds", "1", "--run-dir", str(run)]) == 130
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (f"zero_cost: interrupted: 1 record written this run in "
                                    f"{run / 'records'}; the same command computes the rest")
    assert "Traceback" not in err
    (kept,) = read_records(run / "records")
    assert kept[1]["status"] == "ok"
    monkeypatch.setattr(zc, "zc_record", real)
    assert main([*CLI, "--seeds", "1", "--run-dir", str(run)]) == 0
    assert "1 to score, 1 of 2 recorded already" in capsys.readouterr().err


def test_default_settings_are_the_zc_fidelity():
    assert ZeroCostConfig().name == "zc"
    assert ZeroCostConfig(dataset="cifar100").name == "zc"  # the key holds the dataset
    assert ZeroCostConfig(resolution=16, batch_size=16, latency_reps=1).name == "zc-b16-r16-l1"
    assert ZeroCostConfig(jacob_k=1e-6).name == "zc-k1e-06"


def test_zc_record_is_a_result(batch, monkeypatch):
    from evaluators.record import Result
    from evaluators.zero_cost import zc_record

    r = zc_record("plain8-c16-k1.4.4", 2, batch, FAST)
    assert isinstance(r, Result) and r.ok and r.fidelity == FAST.name and r.seed == 2
    assert r.zero_cost["scores"] == score_design("plain8-c16-k1.4.4", 2, batch, FAST)["scores"]
    assert r.design["params"] == 2842 and r.design["K"] == [[1, 4, 4]]  # JSON types
    # A design that cannot be scored at all is a failed record, without scores.
    from evaluators import zero_cost

    def oom(*args, **kwargs):
        raise MemoryError("no room")

    monkeypatch.setattr(zero_cost, "score_design", oom)
    bad = zc_record("plain8-c16-k1.4.4", 0, batch, FAST)
    assert bad.status == "failed" and bad.reason.startswith("out of memory")
    assert bad.zero_cost is None and "zero_cost" not in bad.to_dict()


@pytest.mark.parametrize("argv, message", [
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--budget", "40k", "--designs", "plain8-c16-k1.4.4"], "exactly one of"),
    (["--budget", "lots"], "budget 'lots'"),
    (["--designs", "plain8-c16-k1.4.4", "--seeds", "0,0"], "--seeds '0,0'"),
    (["--designs", "plain8-c16-k1.4.4", "--dataset", "mnist"], "unknown dataset 'mnist'"),
    (["--designs", "plain8-c16-k1.4.4", "--dataset", "synthetic", "--batch-size", "1"],
     "batch_size=1"),
    (["--designs", "plain8-c16-k1.4.4", "--latency-reps", "-1"], "--latency-reps -1"),
])
def test_cli_bad_input_exits_2_writing_nothing(tmp_path, capsys, argv, message):
    from studies.zero_cost import main

    assert main([*argv, "--run-dir", str(tmp_path / "zc")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_a_store_of_another_config(tmp_path, capsys):
    import json

    from evaluators.record import read_records
    from studies.zero_cost import main

    run = tmp_path / "zc"
    assert main([*CLI, "--seeds", "1", "--max-designs", "1", "--run-dir", str(run)]) == 0
    (path, record), = read_records(run / "records")
    # The same fidelity name with another batch (as another copy of the data would give).
    record["fidelity_config"]["batch_indices"][0] += 1
    path.write_text(json.dumps(record))
    before = sorted(p.name for p in (run / "records").iterdir())
    assert main([*CLI, "--seeds", "2", "--run-dir", str(run)]) == 2
    assert "of another config" in capsys.readouterr().err
    assert sorted(p.name for p in (run / "records").iterdir()) == before
    # Other settings are another fidelity: they share the directory without clashing.
    assert main([*CLI[:-2], "--latency-reps", "1", "--seeds", "1", "--max-designs", "1",
                 "--run-dir", str(run)]) == 0
    assert len(before) + 1 == len(list((run / "records").iterdir()))


def test_docs_quote_the_default_config():
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "proxies.md").read_text()
    cfg = ZeroCostConfig()
    assert f"{cfg.batch_size} images of the official train split" in doc
    assert f"(`batch_seed` {cfg.batch_seed})" in doc and cfg.resolution is None
    assert f"k = {cfg.jacob_k:.0e}".replace("e-0", "e-") in doc
    assert f"f(x + {cfg.zen_alpha:g} eps)" in doc
    assert f"; {cfg.zen_batch_size} images |" in doc
    assert f"({cfg.latency_warmup} warm-up, {cfg.latency_reps} timed)" in doc
    assert cfg.threads == 1 and "One thread" in doc
