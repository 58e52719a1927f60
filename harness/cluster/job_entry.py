"""`python -m harness.cluster.job_entry <folder>`: what a sweep job runs instead of submitit's
`submitit.core._submit`.

It is submitit's own job loop (`submitit.core.submission.process_job`: load the submitted call,
install the requeue signal handlers, run, write the result) with one change: the submitted call is
loaded by `harness.cluster.signed.SignedSubmission.load`, which refuses a file whose signature
does not hold instead of unpickling it. A refused job ends with submitit's error result and runs
nothing of the file.
"""

from submitit.core import submission, utils

from harness.cluster.signed import SignedSubmission


def main() -> None:
    # process_job reads the file through `utils.DelayedSubmission.load`; in this process that
    # is the verifying loader.
    utils.DelayedSubmission.load = SignedSubmission.load  # type: ignore[method-assign]
    submission.submitit_main()


if __name__ == "__main__":
    main()
