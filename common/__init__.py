"""Pieces shared by `models` and `tasks`, which may not import each other nor `harness`.

Three things live here: the project's single user-facing exception type, the single registry
mechanism that fills `models.MODELS` and `tasks.TASKS`, and the task objectives
(`common.objective`) that tasks declare and the harness reads.
"""

from common.errors import UserError
from common.objective import CLASSIFICATION, OBJECTIVES, REGRESSION, Objective, objective_named
from common.registry import Registry

__all__ = [
    "CLASSIFICATION",
    "OBJECTIVES",
    "REGRESSION",
    "Objective",
    "Registry",
    "UserError",
    "objective_named",
]
