"""The six zero-cost proxies (scores of a net at initialisation), each from its paper, and the
function of every score of the registry (:mod:`evaluators.scores`), reading a ScoreInputs.

Each proxy is written from its paper's definition (cited in its docstring); reference code
(zero-cost-nas of Abdelfattah et al., NASLib, nas-without-training, Zen-NAS) was read for
the conventions the papers leave open, and the deviations are said where they are made.
Conventions shared by all of them here:

- Weights: ``torch.manual_seed(seed)`` then ``search_space.build``, exactly as
  :func:`evaluators.evaluate` builds the net it trains, so the proxies of seed s are those
  of the initial weights of the training record of seed s (``impl="reference"``, which has
  the same parameters and initialisation as the default implementation and calls its
  ``nn.ReLU`` and ``nn.BatchNorm2d`` modules, so hooks see them). Zen-score draws its own
  Gaussian weights (its definition) from a generator seeded with the same seed.
- Data: one batch of ``batch_size`` images of the official train split, drawn once by
  ``batch_seed`` and recorded by index (:func:`proxy_batch`), normalised with the train
  split's channel statistics as in training; the same batch for every design and seed.
- BatchNorm: in training mode (batch statistics) for snip, grad_norm, jacob_cov, NASWOT and
  Zen, as the references run them; removed (the identity) for synflow, as zero-cost-nas
  does (``bn=False``); Tanaka et al.'s eval mode at initial statistics is that up to a
  factor (1 + eps)^(-1/2) per BatchNorm.
- Loss: cross-entropy of the logits (snip, grad_norm).
- Layers scored: the weights of every ``nn.Conv2d`` and ``nn.Linear`` (biases and BatchNorm
  affine parameters excluded), as in zero-cost-nas.
- Every function works on a copy: the model passed in is not changed.

Example:
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 1, bias=False))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[2.0, -3.0]]))
    >>> synflow(net, (2,))  # |2| * 1 + |-3| * 1: each weight times the flow through it
    5.0
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import search_space as ss
from evaluators.latency import measure_latency

_PRUNABLE = (nn.Conv2d, nn.Linear)


def synflow(model: nn.Module, input_shape: Sequence[int]) -> float:
    """SynFlow (Tanaka et al. 2020, "Pruning neural networks without any data by iteratively
    conserving synaptic flow", NeurIPS), as a NAS proxy (Abdelfattah et al. 2021, "Zero-Cost
    Proxies for Lightweight NAS", ICLR): with every parameter replaced by its absolute
    value, R = 1^T f(1) for an all-ones input of one sample, and the score is
    sum over weights of |theta * dR/dtheta|.

    In float64 (R is a product over layers). BatchNorm is removed (zero-cost-nas's
    ``bn=False``). With non-negative weights and input every ReLU is the identity, so R is
    the sum over input-output paths of the product of the weights along each.

    Args:
        model: the network (not changed).
        input_shape: one sample's shape, e.g. (3, 32, 32).
    """
    net = _without_batchnorm(copy.deepcopy(model)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    net(torch.ones(1, *input_shape, dtype=torch.float64)).sum().backward()
    total = sum(float((m.weight.detach() * m.weight.grad).abs().sum())
                for m in _prunable(net) if m.weight.grad is not None)
    if not math.isfinite(total):
        raise FloatingPointError(f"synflow overflowed float64 ({total})")
    return total


def naswot(model: nn.Module, images: torch.Tensor,
           post_relu: tuple[type[nn.Module], ...] = ()) -> float:
    """NASWOT (Mellor et al. 2021, "Neural Architecture Search without Training", ICML):
    log |det K_H|, where K_H[i, j] = N_A - d_H(c_i, c_j) sums, over every ReLU, the number
    of units on which images i and j have the same binary activation code (c = pre-activation
    > 0); N_A is the number of units, d_H the Hamming distance.

    Per ReLU layer with codes c (B x N, 0/1): c c^T + (1 - c)(1 - c)^T, written as
    2 c c^T - n 1^T - 1 n^T + N (n = row sums), one matrix product. Products in float32
    are exact (integers < 2^24); K accumulates in float64. BatchNorm in training mode.

    Args:
        model: the network (not changed).
        images: the batch (B >= 2).
        post_relu: module types whose *output* is a ReLU's (e.g. a residual pair ending in
            ``F.relu``), counted as ReLU layers too; ``nn.ReLU`` modules always are.

    Returns:
        log det K_H; -inf when K_H is singular (two images with equal codes everywhere).
    """
    net = copy.deepcopy(model).train()
    b = images.shape[0]
    kernel = torch.zeros(b, b, dtype=torch.float64)

    def hook(_module: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        kernel.add_(activation_kernel((out.detach() > 0).reshape(b, -1)))

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, (nn.ReLU, *post_relu))]
    try:
        with torch.no_grad():
            net(images)
    finally:
        for h in handles:
            h.remove()
    if not handles:
        raise ValueError("naswot: the model has no ReLU to read activation codes from")
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else float("-inf")


def activation_kernel(codes: torch.Tensor) -> torch.Tensor:
    """NASWOT's kernel of one layer: [i, j] = units where rows i and j of the 0/1 ``codes``
    (B x N) agree (N minus their Hamming distance), float64.

    >>> activation_kernel(torch.tensor([[1, 0, 1], [1, 1, 0]], dtype=torch.bool)).tolist()
    [[3.0, 1.0], [1.0, 3.0]]
    """
    c = codes.to(torch.float32)
    n = c.sum(1, dtype=torch.float64)
    same_on = (c @ c.T).to(torch.float64)
    return 2 * same_on - n[:, None] - n[None, :] + c.shape[1]


def snip(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """SNIP (Lee et al. 2019, "SNIP: Single-shot Network Pruning based on Connection
    Sensitivity", ICLR) summed over the network as a NAS proxy (Abdelfattah et al. 2021):
    sum over weights of |dL/dw * w|, L the cross-entropy of the batch (BatchNorm in training
    mode). SNIP's connection sensitivity is the gradient with respect to a multiplicative
    mask c = 1 on each weight, dL/dc = dL/dw * w; it is computed here in that closed form."""
    return gradient_proxies(model, images, labels, jacobian=False)["snip"]


def grad_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """grad_norm (Abdelfattah et al. 2021, "Zero-Cost Proxies for Lightweight NAS", ICLR):
    the sum over layers of the Euclidean norm of dL/dW, L the cross-entropy of the batch
    (BatchNorm in training mode), W each convolution's and linear layer's weight."""
    return gradient_proxies(model, images, labels, jacobian=False)["grad_norm"]


def jacob_cov(model: nn.Module, images: torch.Tensor, k: float = 1e-5) -> float:
    """jacob_cov (Mellor et al. 2020, "Neural Architecture Search without Training",
    arXiv:2006.04647 v1, as used by Abdelfattah et al. 2021): with J_i = d(sum of the
    outputs for image i)/d(image i), flattened, and Sigma the correlation matrix of the
    J_i over the batch, the score is -sum over eigenvalues s of Sigma of
    log(s + k) + 1/(s + k) (:func:`jacob_cov_score`). Higher when the Jacobians of
    different images are less correlated. BatchNorm in training mode, as the references
    run it (the batch's images then interact through the batch statistics)."""
    return gradient_proxies(model, images, None, k=k)["jacob_cov"]


def gradient_proxies(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None,
                     k: float = 1e-5, *, jacobian: bool = True) -> dict[str, float]:
    """snip and grad_norm (from one backward pass of the cross-entropy, when ``labels`` are
    given) and jacob_cov (from one of the summed outputs, when ``jacobian``): the
    definitions of :func:`snip`, :func:`grad_norm` and :func:`jacob_cov`, BatchNorm in
    training mode. Two forward passes, not one with two backward passes, so that any block
    implementation works (the default one's backward runs once per forward)."""
    out: dict[str, float] = {}
    if labels is not None:
        net = copy.deepcopy(model).train()
        layers = _prunable(net)
        grads = torch.autograd.grad(F.cross_entropy(net(images), labels),
                                    [m.weight for m in layers], allow_unused=True)
        pairs = [(m.weight.detach(), g) for m, g in zip(layers, grads, strict=True)
                 if g is not None]
        out["snip"] = sum(float((g * w).abs().sum()) for w, g in pairs)
        out["grad_norm"] = sum(float(g.norm()) for _, g in pairs)
    if not jacobian:
        return out
    net = copy.deepcopy(model).train()
    x = images.clone().requires_grad_(True)
    (g_x,) = torch.autograd.grad(net(x).sum(), x)
    out["jacob_cov"] = jacob_cov_score(g_x.reshape(x.shape[0], -1).double().numpy(), k)
    return out


def jacob_cov_score(jacobians: np.ndarray, k: float = 1e-5) -> float:
    """The jacob_cov score of per-image Jacobians (B x D rows): -sum(log(s+k) + 1/(s+k))
    over the eigenvalues s of their B x B correlation matrix. Uncorrelated rows: the
    identity, eigenvalues 1, -(log 1 + 1) each.

    >>> jacob_cov_score(np.array([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]]), k=0.0)
    -2.0
    """
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant row: NaN, below
        corr = np.corrcoef(jacobians)
    if not np.all(np.isfinite(corr)):
        raise FloatingPointError("jacob_cov: an image's Jacobian is constant (zero variance)")
    s = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(s + k) + 1.0 / (s + k)))


def zen(features: nn.Module, input_shape: Sequence[int], *, batch_size: int, seed: int,
        alpha: float = 0.01) -> float:
    """Zen-score (Lin et al. 2021, "Zen-NAS: A Zero-Shot NAS for High-Performance Image
    Recognition", ICCV): with every convolution and linear weight drawn from N(0, 1) (biases
    0, BatchNorm gamma 1 and beta 0), x and eps ~ N(0, 1), and f the feature map before the
    global average pool, Zen = log E ||f(x) - f(x + alpha eps)||_F + sum over BatchNorm
    layers i of log sigma_i, sigma_i = sqrt(mean over channels j of Var_ij), Var_ij the
    batch variance BatchNorm i normalises channel j of f(x) with (BatchNorm in training
    mode). The expectation is the mean over the batch's images.

    Deviations from the Zen-NAS code (``compute_zen_score.py``), which follow the paper
    instead: the Frobenius norm per image (the code sums absolute values), and the batch
    variance of f(x)'s pass (the code reads ``running_var`` after both passes at momentum
    0.1, which mixes in the initial 1). One draw per seed (the code averages 32 draws);
    several seeds are recorded instead.

    Args:
        features: the network up to the pre-GAP feature map (not changed).
        input_shape: one sample's shape, e.g. (3, 32, 32).
        batch_size: images per draw.
        seed: seeds the Gaussian weights and inputs.
        alpha: the perturbation scale.
    """
    gen = torch.Generator().manual_seed(seed)
    net = _gaussian_init(copy.deepcopy(features), gen).train()
    x = torch.randn(batch_size, *input_shape, generator=gen)
    eps = torch.randn(batch_size, *input_shape, generator=gen)
    variances: list[torch.Tensor] = []

    def hook(_module: nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
        variances.append(inp[0].detach().var(dim=(0, 2, 3), unbiased=False))

    handles = [m.register_forward_pre_hook(hook) for m in net.modules()
               if isinstance(m, nn.BatchNorm2d)]
    try:
        with torch.no_grad():
            f_x = net(x)
            for h in handles:  # sigma_i from f(x)'s pass only
                h.remove()
            f_mix = net(x + alpha * eps)
    finally:
        for h in handles:
            h.remove()
    delta = (f_x - f_mix).flatten(1).double().norm(dim=1).mean()
    bn_term = sum(0.5 * math.log(float(v.double().mean())) for v in variances)
    return math.log(float(delta)) + bn_term


def _gaussian_init(net: nn.Module, gen: torch.Generator) -> nn.Module:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, _PRUNABLE):
                m.weight.normal_(generator=gen)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
    return net


def _prunable(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, _PRUNABLE)]


def _without_batchnorm(net: nn.Module) -> nn.Module:
    """``net`` with every BatchNorm replaced by the identity (in place)."""
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, nn.Identity())
    return net


# --- one design ----------------------------------------------------------------------------


# --- the registry's functions (evaluators.scores names them) --------------------------------


@dataclass(frozen=True, eq=False)
class ScoreInputs:
    """What the scores of one (design, seed) read (each ScoreSpec.needs says which)."""

    design: ss.Design
    info: dict[str, Any]  # ss.describe(design) at the net's input size
    model: nn.Module  # impl="reference", built after torch.manual_seed(seed)
    images: torch.Tensor  # the fixed batch, normalised
    labels: torch.Tensor
    seed: int
    config: Any  # evaluators.zero_cost.ZeroCostConfig
    num_classes: int


def synflow_score(x: ScoreInputs) -> float:
    return synflow(x.model, tuple(x.images.shape[1:]))


def naswot_score(x: ScoreInputs) -> float:
    from search_space.modules import ResidualPair

    return naswot(x.model, x.images, post_relu=(ResidualPair,))


def gradient_scores(x: ScoreInputs) -> dict[str, float]:
    return gradient_proxies(x.model, x.images, x.labels, k=x.config.jacob_k)


def zen_score(x: ScoreInputs) -> float:
    features = nn.Sequential(x.model.stem, x.model.blocks)
    return zen(features, tuple(x.images.shape[1:]), batch_size=x.config.zen_batch_size,
               seed=x.seed, alpha=x.config.zen_alpha)


def latency_scores(x: ScoreInputs) -> dict[str, float | None]:
    """Median CPU milliseconds of the default implementation (as trained records measure),
    with the reference net's weights."""
    if x.config.latency_reps == 0:
        return {"latency_b1_ms": None, "latency_b64_ms": None}
    size = x.info["input_size"]
    model = ss.build(x.design, num_classes=x.num_classes, input_size=size)
    model.load_state_dict(x.model.state_dict())
    ms = measure_latency(model, size, device=torch.device("cpu"),
                         warmup=x.config.latency_warmup, reps=x.config.latency_reps)
    return {"latency_b1_ms": ms[1], "latency_b64_ms": ms[64]}


def design_scores(x: ScoreInputs) -> dict[str, Any]:
    """The cost baselines and the paper's quantities of describe(), exactly. The record's
    "theory" stays the retired bottleneck score, so records of one fidelity keep one meaning
    (the committed exports hold it); the paper's equal-parameter score, ss.theory_score, is
    a function of describe() that the analysis computes (analysis.proxies.equal_params)."""
    info = x.info
    return {"params": info["params"], "flops": info["flops"], "width": info["width"],
            "non_sparsity": info["non_sparsity"], "density": info["density"],
            "balance_deviation": info["balance_deviation"],
            "theory": ss.bottleneck_score(info["width"], info["non_sparsity"],
                                          info["density"], info["block_params"])}
