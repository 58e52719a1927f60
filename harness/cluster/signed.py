"""Job pickles that only this launch can have written: submitit's submitted call, signed.

submitit hands a job its work as a pickle in the sweep folder (`<job>_submitted.pkl`; rewritten
inside the job when it checkpoints for a requeue) and starts it with `python -m
submitit.core._submit`, which unpickles that file unrestricted: anyone who can write into the
sweep folder could make a job run their code. Here the file carries an HMAC-SHA256 of its pickle
under a secret key that never touches the sweep folder: the launcher draws it
(`ensure_job_key`, 32 random bytes) into its environment, which local jobs inherit and SLURM
exports to the job (and keeps for its requeues). The executors below write signed files
(`SignedSubmission.dump`) and start jobs with `python -m harness.cluster.job_entry`, which loads
only a file whose signature holds (`SignedSubmission.load`); any other file is refused before a
byte of it is unpickled. The job's result comes back as JSON (`harness.cluster.jobs.outcome_path`),
so the launcher unpickles nothing either.
"""

import hashlib
import hmac
import os
import pickle
import secrets
import shlex
import typing as tp
from pathlib import Path

import cloudpickle
import submitit
from submitit.core import core, utils

KEY_VARIABLE = "SSM_BENCH_JOB_KEY"
HEADER = b"ssm-bench signed job v1\n"
DIGEST_CHARS = 64  # hex of SHA-256
ENTRY_MODULE = "harness.cluster.job_entry"


class UnsignedJobError(RuntimeError):
    """A job file without a valid signature: it is refused, not unpickled."""


def ensure_job_key() -> None:
    """Draw the launch's signing key into this process's environment (kept if already there)."""
    os.environ.setdefault(KEY_VARIABLE, secrets.token_hex(32))


def _key() -> bytes:
    key = os.environ.get(KEY_VARIABLE, "")
    if not key:
        raise UnsignedJobError(f"{KEY_VARIABLE} is not set: this job was not started by ssm-bench")
    return key.encode()


def _digest(payload: bytes) -> bytes:
    return hmac.new(_key(), payload, hashlib.sha256).hexdigest().encode()


def signed_bytes(obj: object) -> bytes:
    """`HEADER`, the HMAC of the pickle, a newline, the pickle (cloudpickle, as submitit's)."""
    payload = cloudpickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    return HEADER + _digest(payload) + b"\n" + payload


def verified_payload(data: bytes, source: Path | str) -> bytes:
    """The pickle inside a signed file's bytes; `UnsignedJobError` unless the signature holds."""
    start = len(HEADER) + DIGEST_CHARS + 1
    if not data.startswith(HEADER) or len(data) < start:
        raise UnsignedJobError(f"{source} is not a signed ssm-bench job file; refused, not loaded")
    digest, payload = data[len(HEADER) : start - 1], data[start:]
    if not hmac.compare_digest(digest, _digest(payload)):
        raise UnsignedJobError(
            f"{source}: signature does not match (changed after the launcher wrote it); refused"
        )
    return payload


class SignedSubmission(utils.DelayedSubmission):
    """submitit's delayed call, written and read as a signed file."""

    def dump(self, filepath: str | Path) -> None:
        Path(filepath).write_bytes(signed_bytes(self))

    @classmethod
    def load(cls, filepath: str | Path) -> "SignedSubmission":
        payload = verified_payload(Path(filepath).read_bytes(), filepath)
        obj = pickle.loads(payload)  # signed by this launch: its own bytes
        if not isinstance(obj, utils.DelayedSubmission):
            raise UnsignedJobError(f"{filepath} holds a {type(obj).__name__}, not a job")
        return obj

    @classmethod
    def of(cls, delayed: utils.DelayedSubmission) -> "SignedSubmission":
        """The same call (function, arguments, timeout state) as a `SignedSubmission`."""
        signed = cls.__new__(cls)
        signed.__dict__.update(delayed.__dict__)
        return signed


class _Signed:
    """Executor mixin: jobs get signed files and start through `ENTRY_MODULE`."""

    folder: Path
    python: str

    @property
    def _submitit_command_str(self) -> str:
        return " ".join([self.python, "-u -m", ENTRY_MODULE, shlex.quote(str(self.folder))])

    def _internal_process_submissions(
        self, delayed_submissions: list[utils.DelayedSubmission]
    ) -> list[core.Job[tp.Any]]:
        signed = [SignedSubmission.of(d) for d in delayed_submissions]
        return super()._internal_process_submissions(signed)  # type: ignore[misc]


class SignedLocalExecutor(_Signed, submitit.LocalExecutor):
    """submitit's local executor with signed job files."""


class SignedSlurmExecutor(_Signed, submitit.SlurmExecutor):
    """submitit's SLURM executor with signed job files."""
