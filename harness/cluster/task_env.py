"""torch.distributed's environment for a multi-task submitit job (SLURM or local).

A run on several GPUs or nodes is one submitit job with `tasks_per_node * nodes` tasks; submitit
starts the same pickled callable in every task (through `srun` on SLURM, as sibling processes
locally). `harness.run.distributed.setup` reads the standard variables `RANK`, `WORLD_SIZE`,
`LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT`; this module fills them from
submitit's `JobEnvironment` (global rank, local rank, number of tasks, the job's first host), so
the training code never looks at `SLURM_*` variables.

Every task must agree on the rendezvous port without talking to each other, so it is derived from
the job id: `MASTER_PORT_BASE + job_number % MASTER_PORT_SPAN`.
"""

import logging
import os
import re
from collections.abc import MutableMapping

import submitit

log = logging.getLogger(__name__)

MASTER_PORT_BASE = 20000
MASTER_PORT_SPAN = 20000


def master_port(job_id: str) -> int:
    """A rendezvous port every task of job `job_id` computes alike (`"1234"`, `"1234_5"`)."""
    digits = re.sub(r"\D", "", job_id)
    if not digits:
        raise ValueError(f"job id {job_id!r} holds no digits")
    return MASTER_PORT_BASE + int(digits) % MASTER_PORT_SPAN


def dist_env(env: "submitit.JobEnvironment") -> dict[str, str]:
    """The torch.distributed variables for one task of a submitit job (strings, as in environ)."""
    return {
        "RANK": str(env.global_rank),
        "WORLD_SIZE": str(env.num_tasks),
        "LOCAL_RANK": str(env.local_rank),
        "LOCAL_WORLD_SIZE": str(env.num_tasks // env.num_nodes),
        "MASTER_ADDR": env.hostnames[0],
        "MASTER_PORT": str(master_port(env.job_id)),
    }


def export_dist_env(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Inside a submitit job of several tasks, write `dist_env` into `environ`; returns what it set.

    A single-task job and a process outside submitit get nothing (the run stays non-distributed).
    Variables already present are kept: a user's own `torchrun` or `MASTER_PORT` wins.
    """
    env = submitit.JobEnvironment()
    if env.num_tasks <= 1:
        return {}
    values = {key: value for key, value in dist_env(env).items() if key not in environ}
    environ.update(values)
    log.info("distributed task %s of %s on %s", env.global_rank, env.num_tasks, env.hostname)
    return values
