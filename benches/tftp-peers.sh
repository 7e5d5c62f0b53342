#!/usr/bin/env bash
# TFTP against its peers, same namespaces, same run: 64 MiB fetched
#  - lock-step by curl at blksize 512 and 1468, from pxedeck and tftpd-hpa;
#  - with RFC 7440 windows by atftp (blksize 512, windowsize 16), from
#    pxedeck and atftpd.
# Root only; two private namespaces joined by a veth; server on core 0,
# client on core 1. Prints MB/s and the server's CPU (clock ticks) per run.
#
# Usage: sudo benches/tftp-peers.sh [pxedeck binary ...]
#        (RUNS=5, TESTS="lock512 lock1468 window")
# Needs: curl, atftp, atftpd, tftpd-hpa, iproute2, bc. tftpd-hpa's CPU is in
# the child it forks per transfer, so its ticks read 0.
set -u
RUNS=${RUNS:-5}
TESTS=${TESTS:-lock512 lock1468 window}
# tftpd-hpa's in.tftpd (on Debian, atftpd may own the name in.tftpd).
HPA=${HPA:-/usr/sbin/in.tftpd}
BINS=("${@:-target/release/pxedeck}")
S=tfp-srv C=tfp-cli
cleanup(){ for ns in $S $C; do for p in $(ip netns pids $ns 2>/dev/null); do kill -9 $p 2>/dev/null; done; ip netns del $ns 2>/dev/null; done; }
trap cleanup EXIT; cleanup
ip netns add $S; ip netns add $C
ip -n $S link add eth0 type veth peer name eth0 netns $C
ip -n $S addr add 10.77.0.1/24 dev eth0; ip -n $S link set eth0 up; ip -n $S link set lo up
ip -n $C addr add 10.77.0.2/24 dev eth0; ip -n $C link set eth0 up; ip -n $C link set lo up
W=$(mktemp -d); chmod 755 $W; mkdir -p $W/boot $W/nodes; head -c $((64<<20)) /dev/urandom > $W/boot/64m.bin; chmod 644 $W/boot/64m.bin
cat > $W/pxedeck.yaml <<Y
server: {address: 10.77.0.1}
dhcp: {mode: proxy}
http: {port: 8080, api_listen: 127.0.0.1:18081, api_token: bench-token-123}
boot_root: boot
inventory: nodes
Y
cpu(){ awk '{print $14+$15}' /proc/$1/stat; }
fetch(){ # test: the client command for one 64 MiB fetch
  case $1 in
    lock512) echo "curl -s --tftp-blksize 512 -o /dev/null tftp://10.77.0.1/64m.bin";;
    lock1468) echo "curl -s --tftp-blksize 1468 -o /dev/null tftp://10.77.0.1/64m.bin";;
    window) echo "atftp --option 'blksize 512' --option 'windowsize 16' -g -r 64m.bin -l /dev/null 10.77.0.1";;
  esac
}
run_client(){ # test; prints seconds
  local t0=$(date +%s.%N)
  ip netns exec $C taskset -c 1 sh -c "$(fetch $1)" >/dev/null 2>&1 || echo FAIL >&2
  local t1=$(date +%s.%N); echo "$t1 - $t0" | bc
}
measure(){ # name pid tests...
  local name=$1 pid=$2; shift 2
  for t in "$@"; do
    for r in $(seq "$RUNS"); do
      local c0=$(cpu $pid); local s=$(run_client $t); local c1=$(cpu $pid)
      echo "$t $name run $r: $(echo "scale=1; 64/$s" | bc) MB/s, server CPU $(( c1 - c0 )) ticks"
    done
  done
}
wants(){ case " $TESTS " in *" $1 "*) return 0;; esac; return 1; }
for bin in "${BINS[@]}"; do
  bin=$(realpath "$bin")
  (cd $W && ip netns exec $S taskset -c 0 $bin -c pxedeck.yaml serve >/dev/null 2>$W/err.log & echo $! > $W/pid)
  sleep 3; pid=$(pgrep -f "$bin -c pxedeck.yaml serve" | head -1)
  measure $(basename $bin) $pid $TESTS
  kill $pid; sleep 1
done
lock=""; for t in lock512 lock1468; do wants $t && lock="$lock $t"; done
if [ -n "$lock" ]; then
  ip netns exec $S taskset -c 0 $HPA -L -s -a 10.77.0.1:69 $W/boot >/dev/null 2>&1 &
  sleep 1; pid=$(pgrep -f "$HPA -L -s -a 10.77.0.1" | head -1)
  measure tftpd-hpa $pid $lock
  kill $pid
fi
if wants window; then
  ip netns exec $S taskset -c 0 atftpd --daemon --no-fork --port 69 --bind-address 10.77.0.1 $W/boot >/dev/null 2>&1 &
  sleep 1; pid=$(pgrep -x atftpd | head -1)
  measure atftpd $pid window
  kill $pid
fi
rm -rf $W
