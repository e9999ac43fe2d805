"""WorkOS Case (``ca``) as a provider, and the synthetic ``ca`` that ``validate case`` runs."""

from cto_harness.providers.case._adapter import CaseEnv, CaseProvider
from cto_harness.providers.case._outcome import classify, read_signals
from cto_harness.providers.case._synthetic import BEHAVIOURS, ENV_DUMP, synthetic_ca_source, write_synthetic_ca

__all__ = [
    "BEHAVIOURS",
    "ENV_DUMP",
    "CaseEnv",
    "CaseProvider",
    "classify",
    "read_signals",
    "synthetic_ca_source",
    "write_synthetic_ca",
]
