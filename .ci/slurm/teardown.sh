#!/usr/bin/env bash
# Stop the daemons that .ci/slurm/setup.sh started (and only those), newest first, by their pids.
#
#   sudo bash .ci/slurm/teardown.sh           # stop; configs, job state and accounting are kept
#   sudo bash .ci/slurm/teardown.sh --purge   # also delete the job state, logs and the configs
set -euo pipefail

STATE_DIR=/var/lib/ssm-bench-slurm
RUN_DIR=/run/ssm-bench-slurm
LOG_DIR=/var/log/ssm-bench-slurm
CONF_DIR=/etc/slurm
MARKER="Written by .ci/slurm/setup.sh (ssm-bench)"

say() { echo "[slurm-teardown] $*"; }

[[ $EUID -eq 0 ]] || {
    echo "[slurm-teardown] error: run as root (sudo bash $0)" >&2
    exit 1
}
case ${1:-} in
"" | --purge) ;;
*)
    echo "[slurm-teardown] error: unknown option '$1'; the only option is --purge" >&2
    exit 2
    ;;
esac

if [[ -s $RUN_DIR/started ]]; then
    # Lines are "NAME PIDFILE" in start order; stop in reverse (slurmd before slurmctld ...).
    tac "$RUN_DIR/started" | while read -r name file; do
        if [[ -s $file ]] && pid=$(cat "$file") && kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            for ((i = 0; i < 40; i++)); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.25
            done
            say "stopped $name (pid $pid)"
        else
            say "$name was not running"
        fi
    done
    rm -f "$RUN_DIR/started"
else
    say "no daemons recorded in $RUN_DIR/started; nothing to stop"
fi

if [[ ${1:-} == --purge ]]; then
    rm -rf "$STATE_DIR" "$LOG_DIR"
    for conf in "$CONF_DIR/slurm.conf" "$CONF_DIR/slurmdbd.conf"; do
        if [[ -e $conf ]] && grep -q "$MARKER" "$conf"; then rm -f "$conf"; fi
    done
    say "removed $STATE_DIR, $LOG_DIR and the configs written by setup.sh"
fi
