#!/usr/bin/env bash
# A single-node Slurm cluster on loopback, with accounting, for the launcher's tests (as root, Debian 12, no systemd).
#   .ci/slurm.sh up      install what is missing (apt), start munged, MariaDB, slurmdbd, slurmctld, slurmd; wait for the node
#   .ci/slurm.sh down    stop, by pid, every daemon that `up` started (and nothing else)
#   .ci/slurm.sh status  exit 0 if the partition answers
# `up` is idempotent: when `sinfo` already answers it starts nothing. It records the pid of each daemon it started in
# $QSM_SLURM_STATE/pids; `down` stops exactly those. Exit status of `up`: 0 up, 3 cannot install or start (the reason
# is on stderr; the tests then skip, except in CI).
# Accounting (slurmdbd on MariaDB) is not optional: without it `sacct` fails and submitit cannot tell that a job died
# without writing its result.
set -euo pipefail

STATE=${QSM_SLURM_STATE:-/var/tmp/qsm-slurm}
PIDS=$STATE/pids
CLUSTER=qsmci
NODE=qsmnode
CPUS=${QSM_SLURM_CPUS:-2}
MEMORY_MB=${QSM_SLURM_MEMORY_MB:-2048}
DB_PASSWORD=qsm-ci-only

log() { echo "[slurm.sh] $*" >&2; }
fail() { log "cannot bring Slurm up: $*"; exit 3; }

is_up() { timeout 3 sinfo -h -p debug -o %T 2>/dev/null | grep -qE "idle|mix|alloc"; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || fail "timed out waiting for $what"
        sleep 0.5
    done
}

alive() {  # alive NAME PID: the process is there and is that daemon (not a reused pid)
    [ "$(cat "/proc/$2/comm" 2>/dev/null)" = "$1" ]
}

record() {  # record NAME PIDFILE: remember a daemon started here
    local pid
    pid=$(cat "$2")
    echo "$1 $pid" >>"$PIDS"
    log "started $1 (pid $pid)"
}

start_daemon() {  # start_daemon NAME COMMAND...: a Slurm daemon that forks and writes $STATE/NAME.pid
    local name=$1
    shift
    if pgrep -x "$name" >/dev/null; then
        log "$name already running; not starting another"
        return 0
    fi
    rm -f "$STATE/$name.pid"
    "$@" || fail "$name did not start, see $STATE/$name.log"
    wait_for 20 "$name's pid file" test -s "$STATE/$name.pid"
    record "$name" "$STATE/$name.pid"
}

install() {
    local missing=()
    for bin in munged slurmctld slurmd slurmdbd sbatch sacct sacctmgr mariadbd pgrep; do
        command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || missing+=("$bin")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || fail "missing ${missing[*]} and not root, so cannot apt-get install them"
    command -v apt-get >/dev/null || fail "missing ${missing[*]} and no apt-get"
    log "installing slurmctld slurmd slurm-client slurmdbd munge mariadb-server procps (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d keeps the packages' init scripts from starting daemons: this script starts its own, by hand
    local own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
    fi
    local rc=0
    { apt-get update -qq && apt-get install -y -qq slurmctld slurmd slurm-client slurmdbd munge mariadb-server procps; } \
        >"$STATE/apt.log" 2>&1 || rc=$?
    [ $own_policy -eq 0 ] || rm -f /usr/sbin/policy-rc.d
    [ $rc -eq 0 ] || fail "apt-get failed, see $STATE/apt.log"
}

write_configs() {
    # refuse to overwrite a real site's configuration
    if [ -f /etc/slurm/slurm.conf ] && ! grep -q "^ClusterName=$CLUSTER" /etc/slurm/slurm.conf; then
        fail "/etc/slurm/slurm.conf exists and is not ours; not touching it"
    fi
    mkdir -p "$STATE/ctld" "$STATE/spool" /run/munge /run/mysqld /var/log/slurm
    chown munge:munge /run/munge && chmod 755 /run/munge
    chown mysql:mysql /run/mysqld
    cat >/etc/slurm/slurm.conf <<EOF
# written by .ci/slurm.sh: a one-node test cluster on loopback
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# a requeued job waits cred_expire seconds before it starts again (default 120): 10 keeps the requeue test short
AuthInfo=cred_expire=10
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=300
SchedulerType=sched/backfill
# schedule every 5 s (default 60): a requeued job starts as soon as it may
SchedulerParameters=sched_interval=5
StateSaveLocation=$STATE/ctld
# slurmctld starts with -i (no saved state) but accounting keeps every job: job ids that grow with the clock, so that a
# second `up` on one machine cannot reuse an id that sacct already holds
FirstJobId=$((($(date +%s) / 10) % 60000000))
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEMORY_MB State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    cat >/etc/slurm/slurmdbd.conf <<EOF
# written by .ci/slurm.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
EOF
    chmod 600 /etc/slurm/slurmdbd.conf
}

start_mariadb() {
    if [ ! -d /var/lib/mysql/mysql ]; then
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$STATE/mariadb-install.log" 2>&1 ||
            fail "mariadb-install-db failed, see $STATE/mariadb-install.log"
    fi
    if ! mysqladmin ping >/dev/null 2>&1; then
        # no --daemonize in MariaDB: run it in the background and record its pid
        /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
            --pid-file=/run/mysqld/mysqld.pid --bind-address=127.0.0.1 --skip-networking=0 \
            >"$STATE/mariadb.log" 2>&1 &
        echo $! >"$STATE/mariadb.pid.launch"
        record mariadbd "$STATE/mariadb.pid.launch"
        until mysqladmin ping >/dev/null 2>&1; do
            kill -0 "$(cat "$STATE/mariadb.pid.launch")" 2>/dev/null || fail "mariadbd exited, see $STATE/mariadb.log"
            sleep 0.5
        done
    fi
    mysql -u root <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF
}

up() {
    mkdir -p "$STATE"
    if is_up; then
        log "Slurm already answers; starting nothing"
        return 0
    fi
    local start=$SECONDS
    install
    write_configs
    # keep only the entries of daemons still running from an earlier `up` (a crashed run leaves stale pids behind)
    touch "$PIDS"
    while read -r name pid; do alive "$name" "$pid" && echo "$name $pid"; done <"$PIDS" >"$PIDS.live" || true
    mv "$PIDS.live" "$PIDS"

    if ! pgrep -x munged >/dev/null; then
        rm -f /run/munge/munged.pid
        runuser -u munge -- /usr/sbin/munged || fail "munged did not start"
        wait_for 10 "munged's pid file" test -s /run/munge/munged.pid
        record munged /run/munge/munged.pid
    fi
    wait_for 10 "munge" sh -c "munge -n | unmunge"

    start_mariadb

    start_daemon slurmdbd /usr/sbin/slurmdbd
    wait_for 30 "slurmdbd" sacctmgr -n list cluster
    sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true # already there on a second `up`
    start_daemon slurmctld /usr/sbin/slurmctld -i
    start_daemon slurmd /usr/sbin/slurmd -N "$NODE"

    wait_for 60 "the node to be idle" is_up
    wait_for 30 "sacct" sacct -n -X -S now
    log "Slurm up in $((SECONDS - start)) s (partition debug, node $NODE, $CPUS CPUs, ${MEMORY_MB} MB)"
}

down() {
    [ -f "$PIDS" ] || { log "nothing started by this script"; return 0; }
    # stop in reverse order of start: slurmd, slurmctld, slurmdbd, mariadbd, munged
    tac "$PIDS" | while read -r name pid; do
        if alive "$name" "$pid"; then
            kill -TERM "$pid"
            for _ in $(seq 1 40); do alive "$name" "$pid" || break; sleep 0.25; done
            if alive "$name" "$pid"; then
                log "$name (pid $pid) still running after 10 s; SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
            fi
            log "stopped $name (pid $pid)"
        fi
    done
    rm -f "$PIDS"
}

case "${1:-}" in
up) up ;;
down) down ;;
status) is_up ;;
*)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
