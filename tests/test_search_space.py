"""The search space: ids, exact costs against torch, connectivity probed on built blocks."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import search_space as ss
from search_space.connectivity import path_counts
from search_space.modules import ReferenceBlock

BUDGETS = (50_000, 300_000, 650_000)
NETS = ("plain8", "res20")
SPACES = {(net, b): ss.enumerate_designs(b, net) for net in NETS for b in BUDGETS}
ALL = sorted({d for ds in SPACES.values() for d in ds}, key=lambda d: d.id)

EXAMPLES = [
    "plain8-c64-k1.64",  # Xception (Table 2)
    "plain8-c144-k1.12.12",  # IGCV2 II (Table 2)
    "plain8-c98-k2.7.7",  # IGCV2 I (Table 5)
    "plain8-c64-k2.g2",  # IGCV1 (Table 5)
    "res20-c216-k1.8.8.8-stem64",  # IGCV2* (Table 3)
    "res8-c64-k1.8.8/1.16.16/1.32.32",  # IGCV2 C64 with per-stage K (Table 4)
    "res20-c48-k2.g2",  # IGCV1 C48 (Table 6)
    "res11-c16-k1.4.4-s3-relu",  # odd B, 3x3 last, nonlinear
    "plain8-c64-k1.8.8-relu",
    "igcv3net-c8-kg2.1.g2-s2-t6-relu",  # IGCV3 (Table 10), at a small width
    "mobilenet1-c8-k1.g8.g8-relu",  # IGCV2 ImageNet net (Table 8) at multiplier 0.25
    "mobilenet2-c8-kg1.1.g1-s2-t6-relu",  # MobileNetV2
]


def meta_costs(d: ss.Design) -> tuple[int, int]:
    """(parameters, FlopCounterMode flops) of the built net, on the meta device (no memory)."""
    with torch.device("meta"):
        model = ss.build(d, impl="reference").eval()
        x = torch.empty(1, 3, ss.input_size(d), ss.input_size(d))
    with FlopCounterMode(display=False) as counter:
        model(x)
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops()


def probe_paths(block_plan, dtype=torch.float32) -> torch.Tensor:
    """Path counts (cout x cin) measured on the built block: all weights 1, BN the identity,
    one-hot input channels on a 1x1 image (a 3x3 kernel then uses only its centre).
    float32 counts exactly up to 2**24."""
    block = ReferenceBlock(block_plan).to(dtype).eval()
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.fill_(1.0)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.eps = 0.0
        eye = torch.eye(block_plan.cin, dtype=dtype)[:, :, None, None]
        return block(eye)[:, :, 0, 0].T.round().long()


@pytest.mark.parametrize("design_id", EXAMPLES)
def test_examples_round_trip_and_build(design_id):
    d = ss.parse(design_id)
    assert d.id == design_id
    assert ss.parse(d.id) == d
    params, flops = meta_costs(d)
    desc = ss.describe(d)
    assert tuple(desc) == ss.DESCRIBE_KEYS  # the record's describe() columns, in order
    assert desc["params"] == params
    assert desc["flops"] * 2 == flops


def test_option_order_is_normalised():
    assert ss.parse("res11-c16-k1.4.4-relu-s3").id == "res11-c16-k1.4.4-s3-relu"


@pytest.mark.parametrize("d", ALL, ids=lambda d: d.id)
def test_every_enumerated_design_costs_exactly_what_torch_counts(d):
    params, flops = meta_costs(d)
    desc = ss.describe(d)
    assert desc["params"] == params
    assert desc["flops"] * 2 == flops
    assert ss.parse(d.id) == d


@pytest.mark.parametrize("key", sorted(SPACES), ids=lambda k: f"{k[0]}-{k[1]}")
def test_enumeration_respects_budget_and_is_maximal(key):
    net, budget = key
    designs = SPACES[key]
    assert len(designs) >= 20
    assert len({d.id for d in designs}) == len(designs)
    for d in designs:
        assert ss.describe(d)["params"] <= budget


def test_uniform_designs_are_at_their_largest_width():
    for d in SPACES[("plain8", 300_000)]:
        entries = d.K[0]
        if not all(isinstance(e, int) for e in entries):
            continue
        if ss.describe(d)["complementarity"] == "strict":
            continue  # a strict design's width is prod(K), not a free choice
        step = math.lcm(*entries)
        wider = ss.Design(net=d.net, depth=d.depth, width=d.width + step, K=d.K)
        assert ss.describe(wider)["params"] > 300_000, d.id


STRICT = [d for d in ALL if ss.describe(d)["complementarity"] == "strict"]
# Every strict design, and every 8th loose one (probing all 400 takes minutes on 2 cores).
PROBED = STRICT + [d for d in ALL if d not in STRICT][::8]


@pytest.mark.parametrize("d", PROBED, ids=lambda d: d.id)
def test_connectivity_probed_on_the_built_blocks(d):
    desc = ss.describe(d)
    dtype = torch.float32 if desc["max_paths"] < 2**24 else torch.float64
    plan = ss.net_plan(d)  # every distinct block: stage blocks and width-changing ones
    probed = [probe_paths(b, dtype) for b in dict.fromkeys((*plan.stage_blocks, *plan.blocks))]
    assert min(int(p.min()) for p in probed) == desc["min_paths"]
    assert max(int(p.max()) for p in probed) == desc["max_paths"]
    density = min(float((p > 0).double().mean()) for p in probed)
    assert density == pytest.approx(desc["density"])
    if desc["complementarity"] == "strict":
        assert all(int(p.min()) == int(p.max()) == 1 for p in probed)


def test_res_net_label_covers_the_width_changing_blocks():
    # Each stage's same-width block is strict (prod K = C, 2C, 4C), but the stride-2 first
    # block of stages 2 and 3 applies the stage's K to half as many input channels: two
    # paths per pair. The label is of the whole net, so it is loose.
    d = ss.parse("res20-c144-k1.4.4.3.3/1.6.4.4.3/1.6.6.4.4")
    plan = ss.net_plan(d)
    assert [int(probe_paths(b).max()) for b in plan.stage_blocks] == [1, 1, 1]
    widening = [b for b in plan.blocks if b.cin != b.cout]
    assert [(b.cin, b.cout) for b in widening] == [(144, 288), (288, 576)]
    assert [int(probe_paths(b).min()) for b in widening] == [2, 2]
    desc = ss.describe(d)
    assert (desc["complementarity"], desc["min_paths"], desc["max_paths"]) == ("loose", 1, 2)


def test_strict_designs_exist_for_every_L():
    for (net, budget), designs in SPACES.items():
        strict_L = {d.L for d in designs if ss.describe(d)["complementarity"] == "strict"}
        # On res20 only Xception stays strict through the stride-2 blocks that double the
        # width (a dense 1x1 has one path per pair at any width); the other strict
        # factorisations of C, 2C and 4C have two paths per pair there.
        expected = {2} if net == "res20" else {2, 3, 4, 5, 6}
        assert strict_L == expected, (net, budget)


def test_probe_matches_full_path_matrix():
    for design_id in ("plain8-c144-k1.12.12", "plain8-c96-k1.8.8", "plain8-c64-k2.g2"):
        block = ss.net_plan(ss.parse(design_id)).stage_blocks[0]
        assert torch.equal(probe_paths(block), torch.from_numpy(path_counts(block)))


# Per-block figures of Tables 2 and 5, and eq. 7 written out independently.
@pytest.mark.parametrize(
    "design_id, expected",
    [
        ("plain8-c64-k1.64", 64 * 9 + 64 * 64),  # Table 2: 4,672
        ("plain8-c144-k1.12.12", 144 * 9 + 2 * 144 * 12),  # Table 2: 4,752
        ("plain8-c96-k1.96", 96 * 9 + 96 * 96),
        ("plain8-c256-k1.16.16", 256 * 9 + 2 * 256 * 16),
        ("plain8-c128-k1.128", 128 * 9 + 128 * 128),
        ("plain8-c361-k1.19.19", 361 * 9 + 2 * 361 * 19),
        ("plain8-c64-k2.g2", 64 * 9 * 2 + 64 * 32),  # Table 5 IGCV1 C64
        ("plain8-c98-k2.7.7", 98 * 9 * 2 + 2 * 98 * 7),  # Table 5 IGCV2 I: SK1 = 18, K = 7
        ("plain8-c100-k1.10.10", 100 * 9 + 2 * 100 * 10),  # Table 5 IGCV2 II C100
        ("plain8-c162-k2.9.9", 162 * 18 + 2 * 162 * 9),
        ("plain8-c169-k1.13.13", 169 * 9 + 2 * 169 * 13),
        ("plain8-c242-k2.11.11", 242 * 18 + 2 * 242 * 11),
    ],
)
def test_paper_per_block_params(design_id, expected):
    desc = ss.describe(ss.parse(design_id))
    assert desc["block_params"] == expected
    assert desc["block_flops"] == expected * 32 * 32


def test_table2_exact_numbers_and_properties():
    x = ss.describe(ss.parse("plain8-c64-k1.64"))
    v2 = ss.describe(ss.parse("plain8-c144-k1.12.12"))
    assert (x["block_params"], v2["block_params"]) == (4672, 4752)
    assert v2["complementarity"] == "strict" and v2["density"] == 1.0
    assert v2["balance_deviation"] == 1.0
    assert v2["non_sparsity"] == pytest.approx(4752 / (9 * 144 * 144))
    assert x["family"] == "xception" and v2["family"] == "igcv2"


def test_table5_balance_deviation():
    # IGCV2 I: S*K1 = 18 against K2 = K3 = 7 (far from eq. 11); IGCV2 II balanced.
    assert ss.describe(ss.parse("plain8-c98-k2.7.7"))["balance_deviation"] == pytest.approx(18 / 7)
    assert ss.describe(ss.parse("plain8-c100-k1.10.10"))["balance_deviation"] == 1.0


def test_theory_helpers():
    assert ss.params_q((1, 12, 12), 144) == 4752  # eq. 7 = Table 2
    assert ss.satisfies_product((1, 12, 12), 144) and not ss.satisfies_product((1, 8, 8), 144)
    assert ss.params_lower_bound(144, 3) == pytest.approx(3 * 144 * (9 * 144) ** (1 / 3))
    assert ss.optimal_L(144) == pytest.approx(math.log(9 * 144))  # eq. 14, about 7.17
    assert ss.optimal_L_separated(144) == pytest.approx(1 + math.log(144))
    assert ss.balanced_branch_size(144, 3) == pytest.approx(12.0)
    assert ss.balanced_branch_size(144, 3, separated=False) == pytest.approx(1296 ** (1 / 3))
    assert ss.most_balanced(144, 2) == (12, 12)
    assert set(ss.factorizations(12, 2)) == {(6, 2), (4, 3)}
    # eq. 10 is a lower bound of eq. 7 for every factorisation
    for f in ss.factorizations(144, 2):
        assert ss.params_q((1, *f), 144) >= 144 * sum(f) >= 2 * 144 * 144**0.5 - 1e-9


@pytest.mark.parametrize("design_id", EXAMPLES)
def test_forward_backward_every_net_kind(design_id):
    torch.manual_seed(0)
    d = ss.parse(design_id)
    n = ss.input_size(d)
    if n == 224:  # ImageNet nets: a smaller image keeps the test fast; costs are checked above
        n = 64
    model = ss.build(d, num_classes=12 if d.net != "mobilenet1" else 16, impl="reference")
    out = model(torch.randn(2, 3, n, n))
    assert out.shape == (2, 12 if d.net != "mobilenet1" else 16)
    out.square().mean().backward()
    assert torch.isfinite(out).all()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_tiny_imagenet_input_uses_a_stride_2_stem():
    d = ss.parse("res20-c16-k1.4.4")
    model = ss.build(d, num_classes=200, input_size=64)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 200)
    assert ss.describe(d, 200, 64)["flops"] < ss.describe(d, 200, 32)["flops"] * 1.01


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("plain8-c100-k1.12.12", "12"),  # K does not divide C
        ("plain8-c64-k64", "L = 1"),
        ("foo-c64-k1.64", "unknown net"),
        ("res21-c16-k1.4.4", r"3B\+2"),
        ("plain8-c64", "NET-cWIDTH-kSPEC"),
        ("plain8-cx-k1.8.8", "width"),
        ("plain8-c64-k1.x.8", "branch"),
        ("plain8-c64-k1.8.8-zz", "unknown option"),
        ("plain8-c64-k1.8.8-s4", "spatial"),
        ("plain8-c64-k1.g3.g3", "3 branches"),
        ("", "non-empty"),
    ],
)
def test_bad_ids_raise_value_errors_naming_the_value(bad, fragment):
    with pytest.raises(ValueError, match=fragment):
        ss.parse(bad)


def test_bad_designs_and_enumeration_arguments():
    with pytest.raises(ValueError, match="L = 1"):
        ss.Design(net="plain8", depth=8, width=64, K=((64,),))
    with pytest.raises(ValueError, match="unknown net 'vgg'"):
        ss.enumerate_designs(650_000, "vgg")
    with pytest.raises(ValueError, match="budget 0"):
        ss.enumerate_designs(0, "plain8")
    with pytest.raises(ValueError, match="fits a budget of 100"):
        ss.enumerate_designs(100, "plain8")
    with pytest.raises(ValueError, match="unknown impl 'x'"):
        ss.build(ss.parse("plain8-c64-k1.64"), impl="x")


def test_import_does_not_pull_torch():
    import subprocess
    import sys

    code = "import sys, search_space; search_space.enumerate_designs(50_000); " \
           "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_accounting_doc_matches_the_code():
    from pathlib import Path

    from search_space.paper import PAPER_NETS, markdown_table

    doc = (Path(__file__).resolve().parent.parent / "docs" / "accounting.md").read_text()
    assert markdown_table() in doc
    assert {n.table for n in PAPER_NETS} == {"2", "3", "4", "5", "6", "9", "11"}
