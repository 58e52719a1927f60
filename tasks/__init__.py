"""Data for the benchmark: real-dataset loaders, faithful generators, transforms, the task registry.

Importing this package registers every task in `TASKS`; `build(name, **overrides)` makes one.
"""

from tasks import (  # noqa: F401  (imported for their registrations)
    cifar,
    digits,
    listops,
    listops_gen,
    memory,
    pathfinder,
    pathfinder_gen,
    retrieval,
    text,
)
from tasks.base import TASKS, TaskData, TaskInfo, build, task_options

__all__ = ["TASKS", "TaskData", "TaskInfo", "build", "task_options"]
