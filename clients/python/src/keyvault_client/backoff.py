"""Delays between failed syncs: exponential, capped, jittered."""

import random
from collections.abc import Callable


class Backoff:
    """Delay n (from 0) is drawn from [d/2, d] with d = min(cap, base * 2**n).

    The jitter spreads out the retries of many proxies that lost Keyvault at the same moment (a
    restart would otherwise be met by all of them at once, in step); keeping half of the delay
    fixed means a retry never comes sooner than half its step.
    """

    def __init__(
        self, base: float, cap: float, *, rng: Callable[[float, float], float] | None = None
    ):
        if base <= 0 or cap < base:
            raise ValueError("backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        self._uniform = rng or random.uniform
        self._failures = 0

    def next_delay(self, *, at_least: float = 0.0) -> float:
        """The pause before the next attempt. `at_least` is a server's Retry-After, honoured up to
        the cap: a longer silence would only make the client stale sooner."""
        step = min(self.cap, self.base * 2 ** min(self._failures, 64))
        self._failures += 1
        return max(self._uniform(step / 2, step), min(at_least, self.cap))

    def reset(self) -> None:
        self._failures = 0
