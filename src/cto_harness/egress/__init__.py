"""Egress control: the per-run network namespace forwarder, the model-call ledger, budgets.

``EgressProxy`` (asyncio) is imported on first use: a run without an endpoint never needs it.
"""

from typing import TYPE_CHECKING, Any

from cto_harness.egress._endpoint import FORWARDER_PORT, Endpoint, EndpointError, redact_url
from cto_harness.egress._ledger import KEEP_BODIES_ENV, LEDGER_NAME, Ledger
from cto_harness.egress._policy import BudgetError, Budgets, Policy, cost_usd, price_for
from cto_harness.egress._session import FORWARDER, Egress, EgressError, EgressOutcome, NetworkMode, plan_egress
from cto_harness.egress._usage import CallUsage, parse_usage, request_info

if TYPE_CHECKING:
    from cto_harness.egress._proxy import EgressProxy

__all__ = [
    "FORWARDER",
    "FORWARDER_PORT",
    "KEEP_BODIES_ENV",
    "LEDGER_NAME",
    "BudgetError",
    "Budgets",
    "CallUsage",
    "Egress",
    "EgressError",
    "EgressOutcome",
    "EgressProxy",
    "Endpoint",
    "EndpointError",
    "Ledger",
    "NetworkMode",
    "Policy",
    "cost_usd",
    "parse_usage",
    "plan_egress",
    "price_for",
    "redact_url",
    "request_info",
]


def __getattr__(name: str) -> Any:
    if name == "EgressProxy":
        from cto_harness.egress._proxy import EgressProxy

        return EgressProxy
    raise AttributeError(f"module 'cto_harness.egress' has no attribute {name!r}")
