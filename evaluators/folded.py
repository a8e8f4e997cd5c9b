"""FoldedNet: N copies of one design's net as one module, the model axis folded into channels.

N models of width C become one net of N*C channels in which every convolution has N times
the groups, so model m owns channels ``m*C .. (m+1)*C - 1`` of every layer and no operation
mixes two models:

- stem: input ``(B, 3N, H, W)``, the N models' own batches side by side (each model keeps its
  own data order and augmentation), a 3x3 convolution with ``groups=N``;
- a group convolution with G branches becomes one with N*G branches; a channel-wise 3x3 stays
  channel-wise; the shuffle ``P_l`` of eq. 4 becomes its block-diagonal copy (each model's
  channels permuted among themselves);
- BatchNorm over N*C channels is exactly N independent BatchNorms (statistics per channel
  over the batch, which for model m's channels holds model m's images only);
- res nets: the parameter-free skip pads each model's channels (``folded_shortcut``);
- the classifier is a batched linear map ``(B, N, C) -> (B, N, classes)``.

Parameters keep the shapes of ``nn.Conv2d(groups=N*G)``: the folded tensor is the N models'
tensors concatenated along dim 0 (stacked for the classifier), under the names of
``search_space.modules.Net``; ``fold_states``/``unfold_states`` convert state dicts both ways
and ``tests/test_folded.py`` holds outputs and gradients to those of N separate nets.

How the group 1x1 convolutions run (``conv1x1``, the GPU's main lever, measured by
``benchmarks/engine_throughput.py``):

- ``"grouped"``: ``nn.Conv2d(groups=N*G)`` and shuffle copies, as the reference block;
- ``"dense"``: each model's block-diagonal weight is scattered into a dense ``C x C`` matrix
  and the layer is one ``conv2d(groups=N)``: a GEMM per model instead of N*G small ones (K_l
  times the multiply-adds, on tensor cores in bf16). A shuffle followed by such a layer is
  not copied: it becomes a column permutation of that dense weight (ReLU between them
  commutes with it);
- ``"bmm"``: ``einsum`` over the N*G branches (one batched matmul on the channels-last view).

Example:
    >>> import search_space as ss
    >>> from search_space.plan import net_plan
    >>> d = ss.parse("plain8-c16-k1.4.4")
    >>> net = FoldedNet(net_plan(d, 10), models=3)
    >>> net(torch.zeros(2, 9, 8, 8)).shape
    torch.Size([2, 3, 10])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from evaluators.fidelity import Fidelity
from search_space.fast import FastStem
from search_space.modules import ResidualPair, stage_blocks
from search_space.plan import Block, NetPlan

CONV1X1 = ("grouped", "dense", "bmm")  # how the group 1x1 convolutions run (module docstring)


class FoldedShuffle(nn.Module):
    """The block-diagonal P_l of eq. 4: each model's C channels shuffled with G branches
    (``ChannelShuffle(G)`` of the reference block, model by model)."""

    def __init__(self, models: int, groups: int) -> None:
        super().__init__()
        self.models, self.groups = models, groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n, g = self.models, self.groups
        if x.is_contiguous(memory_format=torch.channels_last):  # stay channels-last
            y = x.permute(0, 2, 3, 1).view(b, h, w, n, g, c // (n * g))
            return y.transpose(4, 5).reshape(b, h, w, c).permute(0, 3, 1, 2)
        return x.view(b, n, g, c // (n * g), h, w).transpose(2, 3).reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return f"models={self.models}, groups={self.groups}"


def shuffle_perm(channels: int, groups: int) -> torch.Tensor:
    """ChannelShuffle(groups) as a gather: new channel i is old channel ``perm[i]``."""
    return torch.arange(channels).view(groups, channels // groups).t().reshape(-1)


class GroupConv1x1(nn.Module):
    """A folded group 1x1 convolution computed as ``"dense"`` or ``"bmm"`` (module docstring).

    ``weight`` has the shape of ``nn.Conv2d(N*cin, N*cout, 1, groups=N*groups).weight``.
    ``in_perm``: a shuffle of this layer's input (``shuffle_perm``) folded into the dense
    weight's columns instead of being copied; ``"dense"`` only.
    """

    def __init__(self, models: int, cin: int, cout: int, groups: int, mode: str,
                 in_perm: torch.Tensor | None = None) -> None:
        super().__init__()
        if mode not in ("dense", "bmm") or (in_perm is not None and mode != "dense"):
            raise ValueError(f"GroupConv1x1 mode {mode!r} with in_perm={in_perm is not None}; "
                             "accepted: 'dense' (with or without in_perm), 'bmm' (without)")
        self.models, self.cin, self.cout, self.groups, self.mode = models, cin, cout, groups, mode
        k = cin // groups
        self.weight = nn.Parameter(torch.empty(models * cout, k, 1, 1))
        # Column of each weight entry in its model's dense cout x cin matrix.
        branch = torch.arange(cout) // (cout // groups)
        cols = branch[:, None] * k + torch.arange(k)  # cout x k
        if in_perm is not None:
            cols = in_perm[cols]  # W P = W with columns moved: (W P)[:, perm[c]] = W[:, c]
        self.register_buffer("cols", cols.repeat(models, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, k = self.models, self.cin // self.groups
        if self.mode == "dense":
            w = self.weight.view(n * self.cout, k)
            dense = w.new_zeros(n * self.cout, self.cin).scatter(1, self.cols, w)
            return F.conv2d(x, dense.view(n * self.cout, self.cin, 1, 1), groups=n)
        b, _, h, wd = x.shape
        branches = n * self.groups
        xs = x.permute(0, 2, 3, 1).reshape(b * h * wd, branches, k)
        ws = self.weight.view(branches, self.cout // self.groups, k)
        y = torch.einsum("pgk,gok->pgo", xs, ws)
        return y.reshape(b, h, wd, n * self.cout).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (f"models={self.models}, cin={self.cin}, cout={self.cout}, "
                f"groups={self.groups}, mode={self.mode!r}")


def folded_block(block: Block, models: int, conv1x1: str = "grouped") -> nn.Sequential:
    """The block's layers for N models, indexed as ``ReferenceBlock``'s: conv, BN, [shuffle],
    [ReLU] per convolution (a shuffle folded into the next layer stays as an Identity)."""
    n = models
    layers: list[nn.Module] = []
    fold_next: torch.Tensor | None = None
    convs = block.convs
    for i, (conv, g, relu) in enumerate(zip(convs, block.shuffle, block.relu, strict=True)):
        if conv.k == 1 and conv.stride == 1 and conv1x1 != "grouped":
            layers.append(GroupConv1x1(n, conv.cin, conv.cout, conv.groups, conv1x1, fold_next))
        else:
            layers.append(nn.Conv2d(n * conv.cin, n * conv.cout, conv.k, conv.stride,
                                    conv.k // 2, groups=n * conv.groups, bias=False))
        layers.append(nn.BatchNorm2d(n * conv.cout))
        nxt = convs[i + 1] if i + 1 < len(convs) else None
        fold_next = None
        if g > 1:
            if conv1x1 == "dense" and nxt is not None and nxt.k == 1:
                fold_next = shuffle_perm(conv.cout, g)
                layers.append(nn.Identity())
            else:
                layers.append(FoldedShuffle(n, g))
        if relu:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def folded_shortcut(x: torch.Tensor, models: int, cout: int, stride: int) -> torch.Tensor:
    """``modules.shortcut`` model by model: subsample, zero-pad each model's channels."""
    if stride > 1:
        x = x[:, :, ::stride, ::stride]
    b, c, h, w = x.shape
    cin = c // models
    if cout > cin:
        x = F.pad(x.reshape(b, models, cin, h, w), (0, 0, 0, 0, 0, cout - cin))
        x = x.view(b, models * cout, h, w)
    return x


class FoldedPair(nn.Module):
    """``ResidualPair`` for N models: the skip pads each model's channels separately."""

    def __init__(self, first: nn.Module, second: nn.Module, models: int, cout: int,
                 stride: int) -> None:
        super().__init__()
        self.first, self.second = first, second
        self.models, self.cout, self.stride = models, cout, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = folded_shortcut(x, self.models, self.cout, self.stride)
        return F.relu(self.second(self.first(x)) + skip)


class FoldedLinear(nn.Module):
    """N linear classifiers: ``(B, N*C) -> (B, N, classes)``; weight (N, classes, C)."""

    def __init__(self, models: int, features: int, classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(models, classes, features))
        self.bias = nn.Parameter(torch.empty(models, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.weight.shape[0]
        y = torch.einsum("bnc,nkc->bnk", x.view(x.shape[0], n, -1), self.weight)
        return y + self.bias.to(y.dtype)


class FoldedNet(nn.Module):
    """N nets of one plan as one module: ``(B, 3N, H, W) -> (B, N, classes)``.

    Built untrained-but-uninitialised: load the N nets' weights with
    ``load_state_dict(fold_states(...))`` (``FoldedNet.from_nets`` does both).

    Raises:
        ValueError: an ImageNet plan (sparse classifier or inverted residuals), or an unknown
            ``conv1x1``.
    """

    def __init__(self, plan: NetPlan, models: int, conv1x1: str = "grouped") -> None:
        super().__init__()
        if conv1x1 not in CONV1X1:
            raise ValueError(f"conv1x1={conv1x1!r}; accepted: {', '.join(CONV1X1)}")
        if plan.head or plan.skip == "inverted":
            raise ValueError("FoldedNet takes the CIFAR nets (plain8, resD); "
                             "not an ImageNet plan")
        if models < 1:
            raise ValueError(f"models={models}; accepted: an integer >= 1")
        n, s = models, plan.stem
        self.models, self.conv1x1 = n, conv1x1
        # the one model's stem function (search_space.fast.FastStem: on the CPU the C++
        # BatchNorm kernel in training, whose statistics per channel are those of the N
        # models' own stems to the bit), NCHW for the blocks below
        self.stem = FastStem(
            nn.Conv2d(n * s.cin, n * s.cout, s.k, s.stride, s.k // 2, groups=n, bias=False),
            nn.BatchNorm2d(n * s.cout),
            nn.ReLU(inplace=True),
            channel_major=False,
        )
        # Table 1's pairing
        body = stage_blocks(plan, lambda block: folded_block(block, n, conv1x1))
        self.blocks = nn.Sequential(*(
            FoldedPair(m.first, m.second, n, m.cout, m.stride) if isinstance(m, ResidualPair)
            else m for m in body))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(1),
                                        FoldedLinear(n, plan.fc_in, plan.num_classes))

    @classmethod
    def from_nets(cls, plan: NetPlan, nets: list[nn.Module],
                  conv1x1: str = "grouped") -> FoldedNet:
        """The folded copy of ``nets`` (``search_space.build`` nets of ``plan``)."""
        folded = cls(plan, len(nets), conv1x1)
        folded.load_state_dict(fold_states([net.state_dict() for net in nets]))
        return folded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.blocks(self.stem(x))))


def _stacked(key: str) -> bool:
    return key.startswith("classifier.")  # FoldedLinear: a new leading model axis


def fold_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One state dict of a FoldedNet from those of N nets (``Net.state_dict()``), or fold
    any per-parameter dicts keyed alike (optimiser momenta).

    Raises:
        ValueError: the dicts' keys differ, or a scalar (``num_batches_tracked``) differs.
    """
    keys = list(states[0])
    if any(list(s) != keys for s in states):
        raise ValueError("state dicts of different nets: their keys differ")
    out = {}
    for key in keys:
        parts = [s[key] for s in states]
        if _stacked(key):
            out[key] = torch.stack(parts)
        elif parts[0].ndim == 0:
            if any(not torch.equal(p, parts[0]) for p in parts):
                raise ValueError(f"{key} differs between the nets: {[p.item() for p in parts]}")
            out[key] = parts[0].clone()
        else:
            out[key] = torch.cat(parts)
    return out


def unfold_states(state: dict[str, torch.Tensor], models: int) -> list[dict[str, torch.Tensor]]:
    """The inverse of ``fold_states``: N state dicts, each loadable into a ``Net``."""
    out: list[dict[str, torch.Tensor]] = [{} for _ in range(models)]
    for key, value in state.items():
        if _stacked(key):
            parts = list(value.unbind(0))
        elif value.ndim == 0:
            parts = [value] * models
        else:
            parts = list(value.chunk(models))
        for m in range(models):
            out[m][key] = parts[m].clone()
    return out


class FoldedSGD:
    """``torch.optim.SGD(nesterov=True, momentum, weight_decay)`` as elementwise foreach ops
    with the learning rate in a device tensor, so a CUDA graph can capture the step (torch's
    SGD passes a Python float per step). Momentum starts at zero, which makes the first step
    torch's (``buf = grad``)."""

    def __init__(self, params: list[torch.Tensor], fidelity: Fidelity) -> None:
        self.params = params
        self.momenta = [torch.zeros_like(p) for p in params]
        self.neg_lr = torch.zeros((), dtype=params[0].dtype, device=params[0].device)
        self.momentum, self.weight_decay = fidelity.momentum, fidelity.weight_decay

    def set_lr(self, lr: float) -> None:
        self.neg_lr.fill_(-lr)

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params]
        d = torch._foreach_add(grads, self.params, alpha=self.weight_decay)
        torch._foreach_mul_(self.momenta, self.momentum)
        torch._foreach_add_(self.momenta, d)
        torch._foreach_add_(d, self.momenta, alpha=self.momentum)  # Nesterov
        torch._foreach_mul_(d, self.neg_lr)
        torch._foreach_add_(self.params, d)
