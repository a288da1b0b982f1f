#!/usr/bin/env bash
# Bring up (or tear down) a single-node SLURM cluster on this machine for tests:
# munge -> MariaDB -> slurmdbd -> slurmctld -> slurmd, all from Debian, no systemd.
#   tests/slurm/cluster.sh start STATE_DIR   # writes STATE_DIR/pids, prints nothing on success
#   tests/slurm/cluster.sh stop STATE_DIR    # stops exactly the daemons it started (by PID)
# Needs root and: apt-get install slurm-wlm munge slurmdbd mariadb-server
set -euo pipefail
action=${1:?start|stop}
state=$(realpath -m "${2:?state dir}")
mkdir -p "$state"
pids="$state/pids"

wait_for() {  # wait_for SECONDS COMMAND...: retry until the command succeeds
    local limit=$1; shift
    for _ in $(seq "$((limit * 4))"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
    echo "cluster.sh: timed out waiting for: $*" >&2; return 1
}

start_daemon() {  # start_daemon NAME COMMAND...: run in background, record its PID
    local name=$1; shift
    "$@" >"$state/$name.out" 2>&1 &
    echo "$name $!" >>"$pids"
}

stop() {
    [ -f "$pids" ] || return 0
    # reverse start order
    tac "$pids" | while read -r name pid; do
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -f "$pids"
    if [ -f "$state/mysql_dir" ]; then rm -rf "$(cat "$state/mysql_dir")" "$state/mysql_dir"; fi
    # Put back the machine's own SLURM config (none, usually): with a slurm.conf naming a
    # controller that is gone, every `scontrol` (run by Snakemake's SLURM plugin at import)
    # waits ~10 s.
    for f in slurm.conf slurmdbd.conf gres.conf; do
        if [ -f "$state/etc/$f" ]; then mv "$state/etc/$f" "/etc/slurm/$f"
        elif [ -f "$state/etc/$f.ours" ]; then rm -f "/etc/slurm/$f" "$state/etc/$f.ours"; fi
    done
}

if [ "$action" = stop ]; then stop; exit 0; fi

: >"$pids"
trap 'echo "cluster.sh: start failed; stopping what was started (logs in $state)" >&2; stop' ERR
host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.85}' /proc/meminfo)
conf=/etc/slurm
mkdir -p "$conf" "$state/etc" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
# MariaDB runs as user mysql, which may not traverse STATE_DIR (pytest's are mode 700)
mysql_dir=$(mktemp -d /tmp/contig-mysql.XXXXXX)
echo "$mysql_dir" >"$state/mysql_dir"

# keep the machine's own config files to put back on stop
for f in slurm.conf slurmdbd.conf gres.conf; do
    if [ -f "$conf/$f" ]; then cp -p "$conf/$f" "$state/etc/$f"; else touch "$state/etc/$f.ours"; fi
done

# munge: the package's postinst made /etc/munge/munge.key
chown munge:munge /run/munge
start_daemon munged runuser -u munge -- /usr/sbin/munged --foreground
wait_for 10 munge -n

# MariaDB in the state dir, on loopback only
chmod 755 "$mysql_dir"; chown -R mysql:mysql "$mysql_dir"
mysql_install_db --user=mysql --datadir="$mysql_dir" --auth-root-authentication-method=socket >"$state/mysql_install.out" 2>&1
start_daemon mariadbd /usr/sbin/mariadbd --user=mysql --datadir="$mysql_dir" \
    --bind-address=127.0.0.1 --port=3306 --socket="$mysql_dir/mysql.sock" --skip-log-error
wait_for 30 mysql --socket="$mysql_dir/mysql.sock" -e "select 1"
mysql --socket="$mysql_dir/mysql.sock" <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmtest';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL

cat >"$conf/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
LogFile=$state/slurmdbd.log
PidFile=$state/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurmtest
StoragePort=3306
CONF
chmod 600 "$conf/slurmdbd.conf"
# slurmdbd reaches MariaDB through the default socket path
mkdir -p /run/mysqld && ln -sf "$mysql_dir/mysql.sock" /run/mysqld/mysqld.sock

cat >"$conf/slurm.conf" <<CONF
ClusterName=contigtest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
MinJobAge=300
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
GresTypes=gpu
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStoreFlags=job_comment
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
# one fake GPU for scheduling tests: harmless device file
echo "NodeName=$host Name=gpu File=/dev/null" >"$conf/gres.conf"

start_daemon slurmdbd /usr/sbin/slurmdbd -D
wait_for 30 sacctmgr -n list cluster
start_daemon slurmctld /usr/sbin/slurmctld -D -i
wait_for 30 scontrol ping
start_daemon slurmd /usr/sbin/slurmd -D
wait_for 30 bash -c "sinfo -h -o '%T' | grep -qE '^(idle|mixed|allocated)'"
