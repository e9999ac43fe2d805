"""Egress control: the per-run network namespace forwarder, the model-call ledger, budgets.

``EgressProxy`` (asyncio) and the usage parsers are imported on first use: a run without an
endpoint never needs them.
"""

import importlib
from typing import TYPE_CHECKING, Any

from cto_harness.egress._endpoint import FORWARDER_PORT, Endpoint, EndpointError, redact_url
from cto_harness.egress._ledger import KEEP_BODIES_ENV, LEDGER_NAME, Ledger
from cto_harness.egress._policy import BudgetError, Budgets, Policy, cost_usd, price_for
from cto_harness.egress._session import FORWARDER, Egress, EgressError, EgressOutcome, NetworkMode, plan_egress

if TYPE_CHECKING:
    from cto_harness.egress._proxy import EgressProxy
    from cto_harness.egress._usage import CallUsage, parse_usage, request_info

_LAZY = {"EgressProxy": "_proxy", "CallUsage": "_usage", "parse_usage": "_usage", "request_info": "_usage"}

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
    if name not in _LAZY:
        raise AttributeError(f"module 'cto_harness.egress' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"cto_harness.egress.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
