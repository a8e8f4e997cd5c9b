"""Training step time on CUDA with and without deterministic algorithms (sizes the proxy rung).

    python -m benchmarks.gpu_step_time --out step_time.json

For each design: bf16 autocast, channels_last, batch 64 at 32x32, SGD Nesterov as the
evaluators train; 10 warm-up steps then 40 timed ones, with ``torch.use_deterministic_algorithms``
and ``cudnn.benchmark`` as evaluate() sets them (deterministic) and the opposite. Prints and
writes images/s and the implied seconds for one proxy epoch (45,000 images).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import search_space as ss
from evaluators.record import write_json_atomic

DESIGNS = ["plain8-c144-k1.12.12", "plain8-c72-k1.g1", "plain8-c138-k1.3.3.3.3.3.3"]


def steps_per_s(design: str, deterministic: bool, impl: str | None, steps: int = 40) -> float:
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic
    model = ss.build(ss.parse(design), num_classes=10, impl=impl).cuda()
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    x = torch.randn(64, 3, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (64,), device="cuda")
    for i in range(10 + steps):
        if i == 10:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    rows = []
    for design in DESIGNS:
        for impl in (None, "reference"):
            for det in (True, False):
                sps = steps_per_s(design, det, impl)
                row = {"design": design, "impl": impl or ss.DEFAULT_IMPL, "deterministic": det,
                       "img_per_s": round(64 * sps), "proxy_epoch_s": round(45_000 / 64 / sps, 1)}
                print(row, flush=True)
                rows.append(row)
    write_json_atomic(args.out, {"device": torch.cuda.get_device_name(), "rows": rows},
                      sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
