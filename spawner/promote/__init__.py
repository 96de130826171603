"""Promotion: gates, audited compare-and-swap moves of stage pointers, rollback, history.

``core`` orchestrates; ``gates`` decides; ``pointers`` writes tags; ``audit`` records;
``notebooks`` runs the notebook gate. The read side of stage pointers is ``spawner.launch.stages``.
"""

from spawner.promote.core import PromotionError, plan, promote, rollback
from spawner.promote.trail import AuditRecord, AuditTrail, GateResult

__all__ = [
    "AuditRecord",
    "AuditTrail",
    "GateResult",
    "PromotionError",
    "plan",
    "promote",
    "rollback",
]
