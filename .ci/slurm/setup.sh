#!/usr/bin/env bash
# Bring up a one-node SLURM cluster with accounting on this machine, on loopback only.
#
#   sudo bash .ci/slurm/setup.sh       # idempotent: a second run checks and reports "already up"
#   sudo bash .ci/slurm/teardown.sh    # stops the daemons this script started
#
# Installs Debian's slurmctld, slurmd, slurm-client, munge, slurmdbd and mariadb-server, writes
# /etc/slurm/slurm.conf and /etc/slurm/slurmdbd.conf for THIS machine (CPUs and RealMemory from
# `slurmd -C`) from the templates beside this script, then starts munged, MariaDB (127.0.0.1),
# slurmdbd, slurmctld and `slurmd -N localhost` by hand (no systemd needed) and waits until the
# node is idle and `sacct` answers. Accounting is not optional: without slurmdbd submitit reads
# every job state as UNKNOWN and waits forever on a cancelled job.
#
# Environment knobs: SSM_SLURM_PARTITION (default "debug"), SSM_SLURM_CPUS (default: what
# `slurmd -C` reports; a larger number oversubscribes the cores so more jobs run at once).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE_DIR=/var/lib/ssm-bench-slurm
RUN_DIR=/run/ssm-bench-slurm
LOG_DIR=/var/log/ssm-bench-slurm
CONF_DIR=/etc/slurm
PARTITION=${SSM_SLURM_PARTITION:-debug}
DB_NAME=slurm_acct_db
DB_USER=slurm
CLUSTER=ssmbench
MARKER="Written by .ci/slurm/setup.sh (ssm-bench)"
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)

say() { echo "[slurm-setup] $*"; }
die() {
    echo "[slurm-setup] error: $*" >&2
    exit 1
}

# pidfile NAME: where daemon NAME writes its pid (munged and mariadbd run as their own users).
pidfile() {
    case $1 in
    munged) echo /run/munge/munged.pid ;;
    mariadb) echo /run/mysqld/mariadb.pid ;;
    *) echo "$RUN_DIR/$1.pid" ;;
    esac
}

# alive NAME: daemon NAME is running.
alive() {
    local file
    file=$(pidfile "$1")
    [[ -s $file ]] && kill -0 "$(cat "$file")" 2>/dev/null
}

# wait_for WHAT SECONDS CMD...: poll CMD every 0.5 s until it succeeds; die after SECONDS.
wait_for() {
    local what=$1 seconds=$2
    shift 2
    local tries=$((seconds * 2))
    for ((i = 0; i < tries; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    die "$what did not come up within ${seconds}s; see the logs in $LOG_DIR"
}

# started NAME: record "NAME PIDFILE" so that teardown.sh stops this daemon (and only those).
started() {
    local file
    file=$(pidfile "$1")
    grep -q "^$1 " "$RUN_DIR/started" 2>/dev/null || echo "$1 $file" >>"$RUN_DIR/started"
    say "started $1 (pid $(cat "$file"))"
}

install_packages() {
    local missing=()
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        say "packages already installed: ${PACKAGES[*]}"
        return
    fi
    say "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# render TEMPLATE: the template with every @KEY@ replaced; the result is checked for leftovers.
render() {
    local out
    out=$(sed -e "s|@STATE_DIR@|$STATE_DIR|g" -e "s|@RUN_DIR@|$RUN_DIR|g" \
        -e "s|@LOG_DIR@|$LOG_DIR|g" -e "s|@CPUS@|$CPUS|g" -e "s|@REAL_MEMORY@|$REAL_MEMORY|g" \
        -e "s|@PARTITION@|$PARTITION|g" -e "s|@DB_USER@|$DB_USER|g" \
        -e "s|@DB_PASS@|$DB_PASS|g" -e "s|@DB_NAME@|$DB_NAME|g" "$1")
    if grep -q "@[A-Z_]*@" <<<"$out"; then die "unfilled placeholder in $1"; fi
    printf '%s\n' "$out"
}

# write_conf TEMPLATE TARGET MODE: write TARGET if its content changes; returns 0 when written.
write_conf() {
    local template=$1 target=$2 mode=$3 content
    if [[ -e $target ]] && ! grep -q "$MARKER" "$target"; then
        die "$target exists and was not written by this script; move it away to use this cluster"
    fi
    content=$(render "$template")
    if [[ -e $target ]] && [[ "$(cat "$target")" == "$content" ]]; then return 1; fi
    install -m "$mode" /dev/null "$target"
    printf '%s\n' "$content" >"$target"
    say "wrote $target"
}

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        say "munged already running"
        return
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
        say "created /etc/munge/munge.key"
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged --pid-file="$(pidfile munged)"
    wait_for munged 10 bash -c "munge -n </dev/null | unmunge"
    started munged
}

start_mariadb() {
    if mariadb-admin --silent ping >/dev/null 2>&1; then
        say "MariaDB already running"
    else
        if [[ ! -d /var/lib/mysql/mysql ]]; then
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db \
                >>"$LOG_DIR/mariadb.log" 2>&1
        fi
        install -d -o mysql -g mysql -m 0755 /run/mysqld
        setsid nohup mariadbd --user=mysql --datadir=/var/lib/mysql --bind-address=127.0.0.1 \
            --port=3306 --socket=/run/mysqld/mysqld.sock --pid-file="$(pidfile mariadb)" \
            </dev/null >>"$LOG_DIR/mariadb.log" 2>&1 &
        wait_for MariaDB 60 mariadb-admin --silent ping
        started mariadb
    fi
    mariadb -e "CREATE DATABASE IF NOT EXISTS $DB_NAME;
        CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
        CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
        ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
        ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
        GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
        GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';"
}

# stop NAME: stop a daemon started from its pid file and wait for it to exit.
stop() {
    alive "$1" || return 0
    local pid
    pid=$(cat "$(pidfile "$1")")
    kill "$pid"
    for ((i = 0; i < 40; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.25
    done
    die "$1 (pid $pid) did not stop"
}

dbd_listening() { (: </dev/tcp/127.0.0.1/6819) 2>/dev/null; }

node_state() { sinfo -h -n localhost -o %T 2>/dev/null | head -n1; }

[[ $EUID -eq 0 ]] || die "run as root (sudo bash $0): it installs packages and starts daemons"
command -v apt-get >/dev/null || die "needs Debian or Ubuntu (apt-get); see docs/cluster.md"

install -d -m 0755 "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd" "$RUN_DIR" "$LOG_DIR" "$CONF_DIR"
install_packages

read -r DETECTED_CPUS REAL_MEMORY < <(slurmd -C | head -n1 |
    sed -E 's/.*CPUs=([0-9]+).*RealMemory=([0-9]+).*/\1 \2/')
CPUS=${SSM_SLURM_CPUS:-$DETECTED_CPUS}
[[ $CPUS =~ ^[0-9]+$ && $REAL_MEMORY =~ ^[0-9]+$ ]] || die "could not read CPUs/RealMemory from slurmd -C"

# The database password is made once and kept in slurmdbd.conf (mode 600, readable by root only).
DB_PASS=$(sed -n 's/^StoragePass=//p' "$CONF_DIR/slurmdbd.conf" 2>/dev/null || true)
[[ -n $DB_PASS ]] || DB_PASS=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')

dbd_changed=0
slurm_changed=0
write_conf "$HERE/slurmdbd.conf.in" "$CONF_DIR/slurmdbd.conf" 600 && dbd_changed=1
write_conf "$HERE/slurm.conf.in" "$CONF_DIR/slurm.conf" 644 && slurm_changed=1

start_munge
start_mariadb

if ((dbd_changed)); then stop slurmdbd; fi
if alive slurmdbd; then
    say "slurmdbd already running"
else
    slurmdbd
    wait_for slurmdbd 30 dbd_listening
    started slurmdbd
fi
if ! sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
    say "registered cluster $CLUSTER in the accounting database"
fi

if ((slurm_changed)); then
    stop slurmd
    stop slurmctld
fi
if alive slurmctld; then
    say "slurmctld already running"
else
    slurmctld
    wait_for slurmctld 30 scontrol ping
    started slurmctld
fi
if alive slurmd; then
    say "slurmd already running"
else
    slurmd -N localhost
    wait_for slurmd 30 test -s "$RUN_DIR/slurmd.pid"
    started slurmd
fi

# The node is up when idle, or busy with jobs (setup.sh may run again while a sweep runs). A node
# left down or drained by an earlier run is resumed (its state survives restarts).
node_up() { [[ "$(node_state)" =~ ^(idle|mixed|allocated|completing)$ ]]; }
for ((i = 0; i < 60; i++)); do
    node_up && break
    case $(node_state) in
    down* | drain* | fail*) scontrol update nodename=localhost state=resume 2>/dev/null || true ;;
    esac
    sleep 0.5
done
node_up || die "node localhost is '$(node_state)', not up; see $LOG_DIR/slurmd.log"
wait_for sacct 30 sacct -n -X --starttime=now
say "cluster $CLUSTER is up: node localhost $(node_state) with $CPUS CPUs and ${REAL_MEMORY} MB," \
    "partition $PARTITION, accounting on (configs in $CONF_DIR, logs in $LOG_DIR)"
