"""Where a result comes from: the project's checked-out commit (the runs' `git_commit` tag, the
leaderboard page's footer). Imports neither torch nor MLflow."""

import subprocess

from harness.layout import PROJECT_ROOT


def git_commit() -> str:
    """The project's checked-out commit (`git rev-parse HEAD`), "unknown" outside a git clone."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
