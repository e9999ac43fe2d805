"""What the proxy lets through: the admitted model, within the provider's budgets.

Budgets come from ``CTO_HARNESS_<P>_MAX_CALLS``, ``_MAX_INPUT_TOKENS``,
``_MAX_OUTPUT_TOKENS`` and ``_MAX_COST_USD``. Token and cost budgets are checked
before each call against what was measured so far, so the call that crosses a
budget completes and the next one is refused (a model cannot be stopped mid-answer
without breaking the client's protocol). Cost comes from the operator's price table
(``[prices."<model-provider>/<model>"]`` in ``cto-harness.toml``, USD per million
tokens); an unknown price makes cost null and a cost budget unenforceable, which
blocks the run before it starts.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cto_harness.core import ModelPrice

Denial = Literal["model-not-admitted", "budget-exceeded"]


class BudgetError(ValueError):
    """A budget variable is present but unusable (the run is blocked, not a bug)."""


def price_for(prices: Mapping[str, ModelPrice], model_provider: str | None, model: str | None) -> ModelPrice | None:
    """The operator's price for ``model_provider/model`` (or bare ``model``), None when unlisted."""
    if model is None:
        return None
    return prices.get(f"{model_provider}/{model}") or prices.get(model)


def cost_usd(price: ModelPrice, input_tokens: int, output_tokens: int) -> float:
    return (input_tokens * price.input_usd_per_mtok + output_tokens * price.output_usd_per_mtok) / 1e6


@dataclass(frozen=True)
class Budgets:
    max_calls: int | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_cost_usd: float | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.max_calls, self.max_input_tokens, self.max_output_tokens,
                                           self.max_cost_usd))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], prefix: str) -> Budgets:
        """Read ``<prefix>MAX_CALLS`` etc. (``prefix`` is ``CTO_HARNESS_<P>_``).

        Raises:
            BudgetError: a value is not a non-negative number (integer for counts).
        """
        def read(suffix: str, kind: type[int] | type[float]) -> Any:
            raw = environ.get(prefix + suffix, "").strip()
            if not raw:
                return None
            try:
                value = kind(raw)
            except ValueError:
                value = -1
            if not math.isfinite(value) or value < 0:
                what = "a non-negative integer" if kind is int else "a non-negative number"
                raise BudgetError(f"{prefix}{suffix}={raw!r} is not {what}")
            return value

        return cls(max_calls=read("MAX_CALLS", int), max_input_tokens=read("MAX_INPUT_TOKENS", int),
                   max_output_tokens=read("MAX_OUTPUT_TOKENS", int), max_cost_usd=read("MAX_COST_USD", float))


@dataclass
class Spend:
    """What went through so far (guarded by the policy's lock)."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    unmetered_calls: int = 0
    """Allowed calls whose response carried no usage (they count as calls, not tokens)."""


@dataclass
class Policy:
    """Admit one model within budgets; thread-safe, shared by every connection of a run."""

    model: str | None
    model_provider: str | None = None
    budgets: Budgets = field(default_factory=Budgets)
    price: ModelPrice | None = None
    spend: Spend = field(default_factory=Spend)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.price is None:
            self.spend.cost_usd = None

    def admits_model(self, requested: str) -> bool:
        """Exactly the admitted model (also spelled ``<model-provider>/<model>``)."""
        if self.model is None:
            return False
        return requested == self.model or (self.model_provider is not None
                                           and requested == f"{self.model_provider}/{self.model}")

    def check(self, requested: str | None, *, metered: bool = True) -> tuple[Denial, str] | None:
        """Reserve one call for ``requested`` or say why it is refused.

        Unmetered requests (token counting, model listing) are checked for the model only.
        """
        if requested is None or not self.admits_model(requested):
            shown = "no model" if requested is None else f"model {requested!r}"
            return "model-not-admitted", (f"{shown} requested; the only admitted model is "
                                          f"{self.model_provider}/{self.model}")
        if not metered:
            return None
        b = self.budgets
        with self._lock:
            s = self.spend
            spent = None
            if b.max_calls is not None and s.calls >= b.max_calls:
                spent = f"CTO_HARNESS_*_MAX_CALLS={b.max_calls} calls"
            elif b.max_input_tokens is not None and s.input_tokens >= b.max_input_tokens:
                spent = f"MAX_INPUT_TOKENS={b.max_input_tokens} ({s.input_tokens} measured)"
            elif b.max_output_tokens is not None and s.output_tokens >= b.max_output_tokens:
                spent = f"MAX_OUTPUT_TOKENS={b.max_output_tokens} ({s.output_tokens} measured)"
            elif b.max_cost_usd is not None and (s.cost_usd is None or s.cost_usd >= b.max_cost_usd):
                spent = f"MAX_COST_USD={b.max_cost_usd:g} ({s.cost_usd} USD measured)"
            if spent is not None:
                return "budget-exceeded", f"budget spent: {spent.replace('CTO_HARNESS_*_', '')}"
            s.calls += 1
        return None

    def release(self) -> None:
        """Give back a reserved call that never reached the endpoint."""
        with self._lock:
            self.spend.calls -= 1

    def record(self, input_tokens: int | None, output_tokens: int | None) -> float | None:
        """Add one allowed call's measured usage; its cost (None when unknown)."""
        with self._lock:
            s = self.spend
            if input_tokens is None and output_tokens is None:
                s.unmetered_calls += 1
            s.input_tokens += input_tokens or 0
            s.output_tokens += output_tokens or 0
            if self.price is None or (input_tokens is None and output_tokens is None):
                return None
            cost = cost_usd(self.price, input_tokens or 0, output_tokens or 0)
            if s.cost_usd is not None:
                s.cost_usd += cost
            return cost
