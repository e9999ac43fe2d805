"""Egress control: the per-run network namespace forwarder, the model-call ledger, budgets.

``EgressProxy`` (asyncio) and the usage parsers are imported on first use: a run without an
endpoint never needs them.
"""

from typing import TYPE_CHECKING

from cto_harness._lazy import lazy_exports
from cto_harness.egress._endpoint import FORWARDER_PORT, Endpoint, EndpointError, redact_url
from cto_harness.egress._ledger import KEEP_BODIES_ENV, LEDGER_NAME, Ledger
from cto_harness.egress._policy import BudgetError, Budgets, Policy, cost_usd, price_for
from cto_harness.egress._session import FORWARDER, Egress, EgressError, EgressOutcome, NetworkMode, plan_egress

if TYPE_CHECKING:
    from cto_harness.egress._proxy import EgressProxy
    from cto_harness.egress._usage import CallUsage, parse_usage, request_info

_LAZY = {"EgressProxy": "cto_harness.egress._proxy", "CallUsage": "cto_harness.egress._usage",
         "parse_usage": "cto_harness.egress._usage", "request_info": "cto_harness.egress._usage"}

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


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
