"""The architecture plan of a design: every convolution with its channels, groups and size.

One plan feeds both the exact accounting (``costs``) and the torch modules (``modules``), so
the counted parameters and multiply-adds are those of the built network by construction
(the tests check it against ``torch.utils.flop_counter`` all the same).

Choices where the paper is silent (documented in docs/accounting.md):
- every convolution is followed by BatchNorm, none has a bias; the stem is 3x3 conv-BN-ReLU;
- a block changes width at its last convolution (as section 5.1 says for the ImageNet
  nets) and down-samples with stride 2 at its 3x3 convolution;
- res nets: identity skip every two blocks; where a pair changes resolution or width the skip
  is parameter-free (stride-2 subsampling and zero channel padding, ResNet "option A");
- the permutation after group convolution l is the channel shuffle with that convolution's
  branch count (eq. 4 includes P_L after the last one). For prod(K) = C this realises the
  complementary condition (section 3.2); ``connectivity`` verifies it on the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Protocol


class Design(Protocol):
    """What a plan reads of a :class:`search_space.Design`. A design checks that it can be
    built by making its plan (design.py imports this module), so the plan names the fields
    it reads instead of importing the class: no import circle."""

    net: str
    depth: int
    width: int
    spatial: int
    expansion: int
    nonlinear: bool
    stem: int

    @property
    def id(self) -> str: ...

    @property
    def L(self) -> int: ...  # noqa: N802 - the paper's symbol

    @property
    def imagenet(self) -> bool: ...

    def stage_K(self, stage: int) -> tuple[int | str, ...]: ...


@dataclass(frozen=True)
class Conv:
    """One (group) convolution; k x k kernel, padding k // 2, no bias."""

    cin: int
    cout: int
    k: int
    stride: int
    groups: int
    hw_in: int

    @property
    def hw_out(self) -> int:
        return (self.hw_in + 2 * (self.k // 2) - self.k) // self.stride + 1

    @property
    def branch_size(self) -> int:
        """K_l: input channels each output channel sees."""
        return self.cin // self.groups

    @property
    def params(self) -> int:
        return self.cout * self.branch_size * self.k * self.k

    @property
    def macs(self) -> int:
        return self.params * self.hw_out * self.hw_out

    weights = params  # a convolution has no parameters besides its weights (no bias)


@dataclass(frozen=True)
class Block:
    """A chain of L group convolutions with BN after each and a shuffle P_l after each.

    ``shuffle[l]`` is the branch count used to shuffle the output of conv l (1: none).
    ``relu[l]``: a ReLU after conv l's BN (the last entry is the block's end ReLU).
    """

    convs: tuple[Conv, ...]
    shuffle: tuple[int, ...]
    relu: tuple[bool, ...]

    @property
    def cin(self) -> int:
        return self.convs[0].cin

    @property
    def cout(self) -> int:
        return self.convs[-1].cout

    @property
    def weights(self) -> int:
        """Convolution weights only: the paper's per-block count (Tables 2, 5)."""
        return sum(c.params for c in self.convs)

    @property
    def params(self) -> int:
        return self.weights + sum(2 * c.cout for c in self.convs)  # BN scale and shift

    @property
    def macs(self) -> int:
        return sum(c.macs for c in self.convs)


@dataclass(frozen=True)
class Run:
    """One fused segment of FastBlock (search_space.fast): [a k x k conv, its BN, shuffle],
    then (1x1 conv, BN, shuffle)*, [ReLU]. Here, beside the plan, so that torch-free code
    (evaluators.cost_model) counts the runs FastBlock computes.

    ``spatial``: module index of the k x k convolution that opens the run, with ``lead`` its
    (BN index, shuffle branches); both None when the run opens with a 1x1 convolution.
    ``steps``: (conv index, BN index, shuffle branches, groups) of each 1x1 convolution.
    ``cin``: channels entering the affine part (the spatial convolution's output, if any).
    """

    cin: int
    cout: int
    spatial: int | None
    lead: tuple[int, int] | None
    steps: tuple[tuple[int, int, int, int], ...]
    relu: bool


def segments(block: Block) -> tuple[Run, ...]:
    """Cut a block into runs (module indices as in ReferenceBlock: conv, BN, [shuffle],
    [ReLU] per convolution). A run ends at a ReLU, before a spatial conv, or at the end."""
    runs: list[Run] = []
    idx = 0
    run: dict | None = None

    def close(relu: bool) -> None:
        nonlocal run
        if run is not None:
            runs.append(Run(run["cin"], run["cout"], run["spatial"], run["lead"],
                            tuple(run["steps"]), relu))
        run = None

    for conv, g, relu in zip(block.convs, block.shuffle, block.relu, strict=True):
        ci, bi = idx, idx + 1
        if conv.k == 1 and conv.stride == 1:
            if run is None:
                run = {"cin": conv.cin, "spatial": None, "lead": None, "steps": []}
            run["steps"].append((ci, bi, g, conv.groups))
        else:
            close(relu=False)
            run = {"cin": conv.cout, "spatial": ci, "lead": (bi, g), "steps": []}
        run["cout"] = conv.cout
        idx += 2 + (g > 1) + relu
        if relu:
            close(relu=True)
    close(relu=False)
    return tuple(runs)


@dataclass(frozen=True)
class NetPlan:
    """A whole network. ``stage_blocks``: one C->C block per stage at its width and
    resolution, the unit in which the paper counts (and in which connectivity is measured).
    ``head``: group 1x1 convolutions of a sparse classifier (Table 8's IGCV2*); empty for FC.
    """

    stem: Conv
    blocks: tuple[Block, ...]
    skip: str  # "none", "pairs" (identity every two blocks, Table 1), "inverted" (MobileNetV2)
    head: tuple[Block, ...]
    fc_in: int
    num_classes: int
    stage_blocks: tuple[Block, ...]
    input_size: int

    @property
    def params(self) -> int:
        stem = self.stem.params + 2 * self.stem.cout
        if self.head:  # sparse classifier: BN after all but its last conv, which has a bias
            head = sum(b.params for b in self.head[:-1]) + self.head[-1].weights
            return stem + sum(b.params for b in self.blocks) + head + self.num_classes
        fc = self.fc_in * self.num_classes + self.num_classes
        return stem + sum(b.params for b in self.blocks) + fc

    @property
    def macs(self) -> int:
        fc = self.fc_in * self.num_classes if not self.head else 0
        return self.stem.macs + sum(b.macs for b in self.blocks) + sum(
            b.macs for b in self.head
        ) + fc


def resolve_entry(entry: int | str, cin: int) -> int:
    """K_l of one entry: an int is K_l itself; ``gN`` means N branches, K_l = cin / N."""
    if isinstance(entry, int):
        return entry
    g = int(entry[1:])
    if g < 1 or cin % g:
        raise ValueError(f"{g} branches do not divide {cin} input channels (entry {entry!r})")
    return cin // g


@dataclass(frozen=True)
class BlockSpec:
    """What a design says about its blocks in one stage (entries may be ``gN``)."""

    entries: tuple[int | str, ...]
    spatial: int
    expansion: int
    nonlinear: bool
    name: str  # the design id, for error messages

    @classmethod
    def of(cls, d: Design, stage: int) -> BlockSpec:
        return cls(d.stage_K(stage), d.spatial, d.expansion, d.nonlinear, d.id)

    def without_expansion(self) -> BlockSpec:
        """The t = 1 variant (first MobileNetV2 row): the expanding 1x1 conv is dropped."""
        if self.expansion == 1:
            return self
        return BlockSpec(self.entries[1:], max(1, self.spatial - 1), 1, self.nonlinear, self.name)


def make_block(
    spec: BlockSpec, cin: int, cout: int, stride: int, hw_in: int, end_relu: bool = True
) -> Block:
    """The block of a spec mapping cin -> cout channels."""
    entries = spec.entries
    L = len(entries)
    mid = cin * spec.expansion
    chans = [cin] + [mid] * (L - 1) + [cout]
    convs, shuffle, relu = [], [], []
    hw = hw_in
    for i, entry in enumerate(entries):
        ci, co = chans[i], chans[i + 1]
        K = resolve_entry(entry, ci)
        if K < 1 or ci % K:
            raise ValueError(
                f"{spec.name}: branch size K_{i + 1} = {K} does not divide the {ci} input "
                f"channels of group convolution {i + 1}; accepted: divisors of {ci}"
            )
        groups = ci // K
        if co % groups:
            raise ValueError(
                f"{spec.name}: group convolution {i + 1} has {groups} branches, which do not "
                f"divide its {co} output channels"
            )
        is_spatial = i + 1 == spec.spatial
        conv = Conv(ci, co, 3 if is_spatial else 1, stride if is_spatial else 1, groups, hw)
        hw = conv.hw_out
        convs.append(conv)
        # The shuffle is a no-op when each branch has one output channel or there is one branch.
        shuffle.append(groups if 1 < groups < co else 1)
        relu.append(spec.nonlinear and i + 1 <= spec.spatial)
    relu[-1] = end_relu
    return Block(tuple(convs), tuple(shuffle), tuple(relu))


# ImageNet skeletons (Tables 8 and 10) at width multiplier 1 with a 32-channel stem:
# rows of (output channels, repeats, stride of the first repeat, expansion t).
_MOBILENET1 = ((64, 1, 1), (128, 1, 2), (128, 1, 1), (256, 1, 2), (256, 1, 1), (512, 1, 2),
               (512, 5, 1), (1024, 1, 2), (1024, 1, 1))
_MOBILENET2 = ((16, 1, 1, 1), (24, 2, 2, 6), (32, 3, 2, 6), (64, 4, 2, 6), (96, 3, 1, 6),
               (160, 3, 2, 6), (320, 1, 1, 6))
_IGCV3NET = ((16, 1, 1, 1), (24, 4, 2, 6), (32, 6, 2, 6), (64, 8, 2, 6), (96, 6, 1, 6),
             (160, 6, 2, 6), (320, 1, 1, 6))


def stage_widths(d: Design) -> tuple[int, ...]:
    """Width of each stage of blocks."""
    if d.net == "plain8":
        return (d.width,)
    if d.net == "res":
        return (d.width, 2 * d.width, 4 * d.width)
    rows = _MOBILENET1 if d.net == "mobilenet1" else (
        _MOBILENET2 if d.net == "mobilenet2" else _IGCV3NET)
    scale = d.width / 32
    return tuple(_scaled(r[0], scale) for r in rows)


def _scaled(c: int, scale: float) -> int:
    # MobileNet width multipliers round to a multiple of 8, never down by more than 10%
    # (``_make_divisible`` of the MobileNetV2 reference implementation).
    if scale == 1:
        return c
    v = c * scale
    r = max(8, int(v + 4) // 8 * 8)
    return r + 8 if r < 0.9 * v else r


def default_input_size(d: Design) -> int:
    return 224 if d.imagenet else 32


@lru_cache(maxsize=4096)
def net_plan(d: Design, num_classes: int | None = None, input_size: int | None = None) -> NetPlan:
    """The full architecture of a design.

    Args:
        d: the design.
        num_classes: classifier outputs (default 100 for CIFAR nets, as the paper's
            CIFAR-100, and 1000 for the ImageNet nets).
        input_size: image side; CIFAR nets take 32, or 64 with a stride-2 stem (Tiny ImageNet,
            section 4.1); ImageNet nets take 224.

    Raises:
        ValueError: naming the design and the convolution whose channels do not divide.
    """
    if num_classes is None:
        num_classes = 1000 if d.imagenet else 100
    if num_classes < 1:
        raise ValueError(f"num_classes {num_classes} must be >= 1")
    size = input_size or default_input_size(d)
    if d.imagenet:
        return _imagenet_plan(d, num_classes, size)
    if size % 32:
        raise ValueError(
            f"input size {size} for {d.net}: accepted 32 (CIFAR) or 64 (Tiny ImageNet)"
        )
    stem_w = d.stem or d.width
    stem = Conv(3, stem_w, 3, size // 32, 1, size)
    hw = stem.hw_out
    widths = stage_widths(d)
    B = 6 if d.net == "plain8" else (d.depth - 2) // 3
    blocks, reps = [], []
    cin = stem_w
    for s, w in enumerate(widths):
        stride = 1 if s == 0 else 2
        for b in range(B):
            blk = make_block(BlockSpec.of(d, s), cin, w, stride if b == 0 else 1, hw)
            blocks.append(blk)
            hw = blk.convs[-1].hw_out
            cin = w
        reps.append(make_block(BlockSpec.of(d, s), w, w, 1, hw))
    skip = "pairs" if d.net == "res" else "none"
    return NetPlan(stem, tuple(blocks), skip, (), cin, num_classes, tuple(reps), size)


def _imagenet_plan(d: Design, num_classes: int, size: int) -> NetPlan:
    scale = d.width / 32
    if d.net == "mobilenet1":
        rows = tuple((c, n, s, 1) for c, n, s in _MOBILENET1)
    else:
        rows = _MOBILENET2 if d.net == "mobilenet2" else _IGCV3NET
    v1 = d.net == "mobilenet1"
    stem = Conv(3, d.width, 3, 2, 1, size)
    hw, cin = stem.hw_out, d.width
    blocks, reps = [], []
    for c, n, s, t in rows:
        w = _scaled(c, scale)
        spec = BlockSpec.of(d, 0)
        spec = spec.without_expansion() if t == 1 else replace(spec, expansion=t if
                                                                   spec.expansion > 1 else 1)
        for i in range(n):
            blk = make_block(spec, cin, w, s if i == 0 else 1, hw, end_relu=v1)
            blocks.append(blk)
            hw, cin = blk.convs[-1].hw_out, w
        reps.append(make_block(spec, w, w, 1, hw, end_relu=v1))
    head: tuple[Block, ...] = ()
    if v1:
        fc_in = cin
        if d.L > 2:  # Table 8: IGCV2* classifier, two group 1x1 convs with 8 and 4 branches
            head = (_head_block(cin, cin, 8, hw=1), _head_block(cin, num_classes, 4, hw=1))
    else:
        last = _scaled(1280, max(scale, 1.0))  # MobileNetV2 keeps 1280 for multipliers < 1
        blocks.append(Block((Conv(cin, last, 1, 1, 1 if d.net == "mobilenet2" else 2, hw),),
                            (1,), (True,)))
        fc_in = last
    skip = "none" if v1 else "inverted"
    return NetPlan(stem, tuple(blocks), skip, head, fc_in, num_classes, tuple(reps), size)


def _head_block(cin: int, cout: int, branches: int, hw: int) -> Block:
    if cin % branches or cout % branches:
        raise ValueError(f"classifier: {branches} branches do not divide {cin} -> {cout}")
    return Block((Conv(cin, cout, 1, 1, branches, hw),), (branches,), (False,))
