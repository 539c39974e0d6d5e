#!/usr/bin/env bash
# One-node Slurm cluster on localhost for tests/CI (Debian 12, slurm-wlm 22.05, run as root).
# Usage: start-cluster.sh [start|stop|restart|status|purge]      (default: start; idempotent)
# Env:   HARNESS_SLURM_DIR (default /tmp/harness-slurm), HARNESS_SLURM_TIMEOUT (default 60 s),
#        HARNESS_SLURMCTLD_PORT (6817), HARNESS_SLURMD_PORT (6818),
#        HARNESS_SLURM_CRED_EXPIRE (10 s; also the wait before a requeued job may restart)
# Uses the system munged (/run/munge); starts it if not running and stops it only if it started it.
# Then:  eval "$(start-cluster.sh | grep '^export SLURM_CONF=')"
set -euo pipefail
D=${HARNESS_SLURM_DIR:-/tmp/harness-slurm}
TIMEOUT=${HARNESS_SLURM_TIMEOUT:-60}
CTLD_PORT=${HARNESS_SLURMCTLD_PORT:-6817}
SLURMD_PORT=${HARNESS_SLURMD_PORT:-6818}
export SLURM_CONF=$D/slurm.conf
log() { echo "[slurm-cluster] $*" >&2; }
die() {
  log "ERROR: $*"
  for f in "$D"/log/slurmctld.log "$D"/log/slurmd.log /var/log/munge/munged.log; do
    [[ -f $f ]] && { echo "----- tail $f" >&2; tail -n 25 "$f" >&2; }
  done
  exit 1
}
[[ $(id -u) == 0 ]] || { log "must run as root"; exit 1; }

alive() { # alive PIDFILE COMM -> 0 if the pid in PIDFILE is a running COMM
  local p; p=$(cat "$1" 2>/dev/null) || return 1
  [[ -n $p && -r /proc/$p/comm && $(cat /proc/$p/comm 2>/dev/null) == "$2" ]] || return 1
  [[ $(awk '{print $3}' /proc/$p/stat 2>/dev/null) != Z ]]   # zombies count as dead
}
munge_ok() { command -v munge >/dev/null && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

stop_pid() { # stop_pid PIDFILE COMM
  alive "$1" "$2" || { rm -f "$1"; return 0; }
  local p; p=$(cat "$1"); kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 50); do alive "$1" "$2" || break; sleep 0.2; done
  alive "$1" "$2" && { log "$2 ($p) ignored SIGTERM, sending SIGKILL"; kill -KILL "$p" 2>/dev/null || true; sleep 0.5; }
  rm -f "$1"
}

do_stop() {
  if alive "$D/run/slurmctld.pid" slurmctld; then
    # cancel leftover jobs so no slurmstepd/job processes outlive the cluster
    ids=$(squeue -h -o %A 2>/dev/null || true)
    if [[ -n $ids ]]; then
      scancel $ids 2>/dev/null || true
      for _ in $(seq 30); do [[ -z $(squeue -h -t R,CG -o %A 2>/dev/null) ]] && break; sleep 1; done
    fi
  fi
  stop_pid "$D/run/slurmd.pid" slurmd
  stop_pid "$D/run/slurmctld.pid" slurmctld
  if [[ -f $D/run/munged.ours ]]; then   # only stop munged if this script started it
    stop_pid /run/munge/munged.pid munged
    rm -f "$D/run/munged.ours"
  fi
  log "stopped"
}

do_status() {
  for d in slurmctld slurmd; do alive "$D/run/$d.pid" $d && echo "$d: running ($(cat "$D/run/$d.pid"))" || echo "$d: stopped"; done
  munge_ok && echo "munged: running" || echo "munged: stopped"
  alive "$D/run/slurmctld.pid" slurmctld && sinfo -N || true
}

install_pkgs() {
  local need=()
  for b in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
    command -v "${b%%:*}" >/dev/null || [[ -x /usr/sbin/${b%%:*} ]] || need+=("${b##*:}")
  done
  ((${#need[@]})) || return 0
  log "installing ${need[*]}"
  local t0=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${need[@]}" >"/tmp/harness-slurm-apt.log" 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >"/tmp/harness-slurm-apt.log" 2>&1; } \
    || { tail -20 /tmp/harness-slurm-apt.log >&2; die "apt-get install failed"; }
  log "install took $((SECONDS - t0)) s"
}

start_munge() {
  munge_ok && return 0
  if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then mungekey --create --force --keyfile=/etc/munge/munge.key
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
  fi
  chown -R munge:munge /etc/munge; chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key
  # no systemd here: recreate what munge.service's RuntimeDirectory= would do
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge; chmod 755 /run/munge
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged || die "munged failed to start"
  : >"$D/run/munged.ours"
  for _ in $(seq 50); do munge_ok && return 0; sleep 0.2; done
  die "munged started but 'munge -n | unmunge' fails"
}

write_conf() {
  local host cpus mem sockets cores threads
  host=$(hostname -s)
  # hardware as slurmd sees it (CPUs, Sockets, Cores, Threads, RealMemory)
  local hw; hw=$(slurmd -C 2>/dev/null | head -1) || true
  cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw");        cpus=${cpus:-$(nproc)}
  sockets=$(sed -n 's/.*SocketsPerBoard=\([0-9]*\).*/\1/p' <<<"$hw")
  cores=$(sed -n 's/.*CoresPerSocket=\([0-9]*\).*/\1/p' <<<"$hw")
  threads=$(sed -n 's/.*ThreadsPerCore=\([0-9]*\).*/\1/p' <<<"$hw")
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
  mem=${mem:-$(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo)}
  local topo=""
  [[ -n $sockets && -n $cores && -n $threads ]] && topo="Sockets=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads"
  local new; new=$(cat <<EOF
# generated by start-cluster.sh
ClusterName=harness
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=${HARNESS_SLURM_CRED_EXPIRE:-10}
MpiDefault=none
MailProg=/bin/true
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$D/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=5
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
MaxArraySize=10001
MaxJobCount=100000
MinJobAge=300
KillWait=5
OverTimeLimit=0
InactiveLimit=0
SlurmdTimeout=300
SlurmctldTimeout=120
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus $topo RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
)
  if [[ ! -f $SLURM_CONF || $(cat "$SLURM_CONF") != "$new" ]]; then
    if alive "$D/run/slurmctld.pid" slurmctld || alive "$D/run/slurmd.pid" slurmd; then
      log "slurm.conf changed: restarting daemons"
      stop_pid "$D/run/slurmd.pid" slurmd; stop_pid "$D/run/slurmctld.pid" slurmctld
    fi
    printf '%s\n' "$new" >"$SLURM_CONF"
  fi
}

do_start() {
  install_pkgs
  mkdir -p "$D"/{state,spool,log,run}
  local t0; t0=$(date +%s%N)
  start_munge
  write_conf
  if ! alive "$D/run/slurmctld.pid" slurmctld; then
    slurmctld -f "$SLURM_CONF" -i || die "slurmctld failed to start"   # -i: ignore unreadable state
  fi
  local since=0
  if ! alive "$D/run/slurmd.pid" slurmd; then
    since=$(date +%s)
    slurmd -f "$SLURM_CONF" || die "slurmd failed to start"
  fi
  local host st="" reg; host=$(hostname -s)
  for ((i = 0; i < TIMEOUT * 2; i++)); do
    st=$(sinfo -h -N -n "$host" -o %T 2>/dev/null || true)
    # idle from saved state is not enough: wait until the slurmd we started has registered
    reg=$(scontrol show node -o "$host" 2>/dev/null | sed -n 's/.*SlurmdStartTime=\([^ ]*\).*/\1/p')
    reg=$(date -d "$reg" +%s 2>/dev/null || echo 0)
    case $st in
      idle|mixed|allocated) ((reg >= since - 1)) && break ;;
      down*|drain*|fail*) ((i % 10 == 9)) && scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
    esac
    alive "$D/run/slurmctld.pid" slurmctld || die "slurmctld died"
    alive "$D/run/slurmd.pid" slurmd || die "slurmd died"
    sleep 0.5
  done
  [[ $st == idle || $st == mixed || $st == allocated ]] \
    || die "node $host not idle after ${TIMEOUT}s (state: '${st:-no answer}'); $(scontrol show node "$host" 2>&1 | grep -i reason || true)"
  log "cluster up in $((($(date +%s%N) - t0) / 1000000)) ms (node $host: $st)"
  echo "export SLURM_CONF=$SLURM_CONF"
}

case ${1:-start} in
  start) do_start ;;
  stop) do_stop ;;
  restart) do_stop; do_start ;;
  purge) do_stop; rm -rf "$D" ;;   # stop + forget all state (job ids restart at 1)
  status) do_status ;;
  *) echo "usage: $0 [start|stop|restart|status|purge]" >&2; exit 2 ;;
esac
