"""Pieces shared by `models` and `tasks`, which may not import each other nor `harness`.

Only two things live here: the project's single user-facing exception type and the single
registry mechanism that fills `models.MODELS` and `tasks.TASKS`.
"""

from common.errors import UserError
from common.registry import Registry

__all__ = ["Registry", "UserError"]
