"""The runner's side of egress: plan it from the gate, then put what the wire said on the record."""

from __future__ import annotations

from dataclasses import replace

from cto_harness.egress import Egress, EgressError, EgressOutcome, plan_egress
from cto_harness.evidence import EventLog, NetworkBlock, atomic_write_text
from cto_harness.providers import Gate, RunContext
from cto_harness.runner._finalize import RunState
from cto_harness.runner._sandbox_policy import SandboxPolicy

POLICY_CLASSES = ("model-not-admitted", "budget-exceeded")


def plan_run_egress(ctx: RunContext, gate: Gate, state: RunState, *, isolated: bool) -> Egress | None:
    """The run's egress for the gate's admitted endpoint; None (run blocked) when it cannot be honoured."""
    try:
        return plan_egress(provider=gate.provider.name, model=gate.model, run_dir=ctx.run_dir,
                           backend_dir=ctx.backend_dir, environ=ctx.environ, prices=ctx.config.prices,
                           isolated=isolated)
    except EgressError as exc:
        reason = f"egress cannot be enforced: {exc}; no provider process was started"
        atomic_write_text(ctx.backend_dir / "provider-unavailable.txt", reason + "\n")
        state.decide("blocked", "provider-unavailable", reason)
        return None


def record_egress(outcome: EgressOutcome, state: RunState, events: EventLog) -> None:
    """Network block, measured usage, and a policy refusal as the deciding failure (before grading decides)."""
    state.network = NetworkBlock.model_validate(outcome.network)
    state.measured_usage = outcome.measured
    events.emit("egress_finished", **outcome.network,
                measured=outcome.measured.model_dump() if outcome.measured else None,
                policy_failure=outcome.policy_failure[0] if outcome.policy_failure else None)
    if outcome.policy_failure is not None:
        state.decide("fail", *outcome.policy_failure)
    state.reasons.extend(outcome.notes)


def settle_endpoint_failure(outcome: EgressOutcome, state: RunState) -> None:
    """A run that failed while its endpoint answered 5xx or refused is ``provider-crashed``, named so."""
    if outcome.endpoint_failure is None:
        return
    if state.verdict == "fail" and state.failure_class not in POLICY_CLASSES:
        state.overrule("fail", "provider-crashed", outcome.endpoint_failure)
    else:
        state.reasons.append(outcome.endpoint_failure)


def egress_policy(policy: SandboxPolicy, egress: Egress) -> SandboxPolicy:
    """The sandbox's network is the egress's: only the proxy socket with an endpoint, else nothing."""
    return replace(policy, network=egress.network, readable=[*policy.readable, *egress.readable])
