"""The policy engine: a pure model of how Istio, Linkerd and NetworkPolicy decide a request.

No I/O, no clock, no sockets. ``predict(cluster, probe)`` returns the ``Outcome`` curl would
report and the ordered explanation of why.
"""

from __future__ import annotations

from meshtutor.policy.cluster import ApplyReport, Cluster, PodState
from meshtutor.policy.outcome import Outcome, Step
from meshtutor.policy.predict import identity_of, predict, spiffe_id
from meshtutor.policy.probe import DEFAULT_TIMEOUT, ParsedURL, Probe, parse_url

__all__ = [
    "DEFAULT_TIMEOUT",
    "ApplyReport",
    "Cluster",
    "Outcome",
    "ParsedURL",
    "PodState",
    "Probe",
    "Step",
    "identity_of",
    "parse_url",
    "predict",
    "spiffe_id",
]
