"""The ASHA stopping rule of Ray Tune, replayable in simulated time.

Ray Tune's ASHAScheduler decides from results its trials report in real time; it cannot be
driven by a simulated clock, so its rule is written again here, to decide alike
(``ray.tune.schedulers.async_hyperband._Bracket`` with one bracket, ``stop_last_trials``; a
test holds the two side by side).

Example:
    >>> rule = AshaRule(9, reduction_factor=3)
    >>> rule.rungs
    (1.0, 3.0)
    >>> [rule.on_epoch(t, 1, v) for t, v in (("a", 0.5), ("b", 0.4), ("c", 0.6))]
    [True, False, True]
"""

from __future__ import annotations

from typing import Any

import numpy as np


class AshaRule:
    """Asynchronous successive halving (Li et al. 2020) in the stopping form of Ray Tune.

    Rungs sit at ``grace_period * reduction_factor**k`` epochs below ``max_t``. The first time a
    trial reaches a rung, its value is compared with the values recorded at that rung so far
    (not counting its own): it goes on when the rung is empty or when its value is at least
    their (1 - 1/eta) percentile (numpy, linear interpolation), i.e. when it would be in their
    top 1/eta; either way its value is then recorded. A trial at ``max_t`` is complete.
    """

    def __init__(self, max_t: int, *, grace_period: int = 1, reduction_factor: float = 3):
        if max_t < 1 or grace_period < 1 or reduction_factor <= 1:
            raise ValueError(
                f"ASHA needs max_t >= 1, grace_period >= 1, reduction_factor > 1; "
                f"got {max_t}, {grace_period}, {reduction_factor}"
            )
        self.max_t, self.eta = max_t, reduction_factor
        rungs, r = [], float(grace_period)
        while r < max_t:
            rungs.append(r)
            r *= reduction_factor
        self.rungs: tuple[float, ...] = tuple(rungs)
        self._recorded: dict[float, dict[Any, float]] = {m: {} for m in rungs}

    def on_epoch(self, trial: Any, epoch: int, value: float) -> bool:
        """Record ``value`` after ``epoch`` of ``trial``; True: go on, False: stop it."""
        recorded = self._recorded.get(float(epoch))
        if recorded is None or trial in recorded:
            return True
        go_on = not recorded or value >= np.percentile(
            list(recorded.values()), (1 - 1 / self.eta) * 100
        )
        recorded[trial] = value
        return bool(go_on)
