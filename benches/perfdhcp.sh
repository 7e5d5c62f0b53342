#!/usr/bin/env bash
# DHCP throughput: perfdhcp (Kea's load generator) against pxedeck, dnsmasq
# and kea-dhcp4 in the same run, same topology, leases persisted in all
# three. Root only; everything happens in two private namespaces.
#
#   gen (10.64.0.2, perfdhcp as a relay, core 1) ── veth ── srv (10.64.0.1, server, core 0)
#
# For each server: fixed offered rates (server CPU % from /proc, achieved
# rate, drops, delays, and pxedeck's lease-sync thread alone as "sync%"), then
# a ladder to the highest rate with <= 1% drops.
# Medians of RUNS runs. Usage: sudo benches/perfdhcp.sh [pxedeck binary]
# (SERVERS="pxedeck kea" picks which servers run; RATES, LADDER, RUNS, SECS too).
#
# Needs: perfdhcp (kea-admin), kea-dhcp4-server, dnsmasq-base, iproute2.
set -euo pipefail

PXEDECK=${1:-target/release/pxedeck}
RUNS=${RUNS:-3}
SECS=${SECS:-6}
RATES=${RATES:-"4000 8000 16000"}
LADDER=${LADDER:-"12000 16000 20000 24000 28000 32000"}
CLIENTS=${CLIENTS:-50000}
WORK=$(mktemp -d /tmp/perfdhcp.XXXXXX)
SRV=pxb-srv GEN=pxb-gen

# perfdhcp never sets its socket's receive buffer, and a server that sends
# its ACKs in a burst when a sync returns overflows the 208 KiB default:
# the generator drops replies the server sent, and perfdhcp counts them as
# the server's. The default is raised for the run (it is not per
# namespace) and put back on exit; the generator's own losses are printed
# beside the drops ("gen lost").
RMEM_DEFAULT=$(sysctl -n net.core.rmem_default)
cleanup() {
    sysctl -qw net.core.rmem_default="$RMEM_DEFAULT" || true
    for ns in $SRV $GEN; do
        for pid in $(ip netns pids $ns 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del $ns 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
cleanup
mkdir -p "$WORK"
sysctl -qw net.core.rmem_default=4194304

ip netns add $SRV && ip netns add $GEN
ip -n $SRV link set lo up && ip -n $GEN link set lo up
ip -n $SRV link add eth0 type veth peer name eth0 netns $GEN
ip -n $SRV addr add 10.64.0.1/16 dev eth0 && ip -n $SRV link set eth0 up
ip -n $GEN addr add 10.64.0.2/16 dev eth0 && ip -n $GEN link set eth0 up

# --- server start-up, one function per server -------------------------------
start_pxedeck() {
    local d=$WORK/pxedeck && rm -rf "$d" && mkdir -p "$d/nodes" "$d/boot"
    cat > "$d/pxedeck.yaml" <<EOF
server: {address: 10.64.0.1}
dhcp:
  lease_file: $d/leases.jsonl
  pools:
    - {subnet: 10.64.0.0/16, range: 10.64.1.0-10.64.255.254, router: 10.64.0.1, lease_time: 1h}
http: {port: 18080, api_listen: 127.0.0.1:18081}
tftp: {port: 1069}
boot_root: $d/boot
inventory: $d/nodes
EOF
    RUST_LOG=warn ip netns exec $SRV taskset -c 0 "$PXEDECK" --config "$d/pxedeck.yaml" serve \
        > "$d/log" 2>&1 & disown
}
start_dnsmasq() {
    local d=$WORK/dnsmasq && rm -rf "$d" && mkdir -p "$d"
    # --no-ping: neither peer probes an address before offering it.
    ip netns exec $SRV taskset -c 0 dnsmasq --no-daemon --conf-file=/dev/null --port=0 \
        --user=root --no-ping --dhcp-lease-max=200000 --dhcp-leasefile="$d/leases" \
        --dhcp-range=10.64.1.0,10.64.255.254,255.255.0.0,1h > "$d/log" 2>&1 & disown
}
start_kea() {
    local d=$WORK/kea && rm -rf "$d" && mkdir -p "$d"
    cat > "$d/kea.json" <<EOF
{"Dhcp4": {
  "interfaces-config": {"interfaces": ["eth0"], "dhcp-socket-type": "udp"},
  "lease-database": {"type": "memfile", "persist": true, "name": "$d/leases.csv", "lfc-interval": 3600},
  "valid-lifetime": 3600,
  "subnet4": [{"id": 1, "subnet": "10.64.0.0/16", "pools": [{"pool": "10.64.1.0 - 10.64.255.254"}],
               "option-data": [{"name": "routers", "data": "10.64.0.1"}]}],
  "loggers": [{"name": "kea-dhcp4", "severity": "WARN", "output_options": [{"output": "$d/log"}]}]
}}
EOF
    KEA_PIDFILE_DIR=$d KEA_LOCKFILE_DIR=$d ip netns exec $SRV taskset -c 0 kea-dhcp4 -c "$d/kea.json" \
        > "$d/out" 2>&1 & disown
}

server_pid() { ip netns pids $SRV | head -n1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# pxedeck's lease-sync thread alone (0 for the other servers).
sync_ticks() {
    local t n=0
    for t in /proc/"$1"/task/*; do
        [ "$(cat "$t/comm" 2>/dev/null)" = lease-sync ] && n=$(awk '{print $14 + $15}' "$t/stat")
    done
    echo "$n"
}
stop_server() { for pid in $(ip netns pids $SRV); do kill -9 "$pid" 2>/dev/null || true; done; sleep 0.5; }

# UDP datagrams the generator's socket had no room for (RcvbufErrors).
gen_lost() { ip netns exec $GEN awk '/^Udp:/ {n++} /^Udp:/ && n == 2 {print $6}' /proc/net/snmp; }

# One perfdhcp run at an offered rate; prints
# "achieved drops% avg_ms max_ms cpu% gen_lost sync_cpu%".
run_rate() {
    local rate=$1 pid t0 t1 s0 s1 out l0 l1
    pid=$(server_pid)
    [ -n "$pid" ] || { echo "the server did not start; see $WORK" >&2; exit 1; }
    t0=$(cpu_ticks "$pid"); s0=$(sync_ticks "$pid"); l0=$(gen_lost)
    out=$(ip netns exec $GEN taskset -c 1 perfdhcp -4 -l 10.64.0.2 -g single -r "$rate" \
        -R "$CLIENTS" -p "$SECS" 10.64.0.1 2>&1 || true)
    t1=$(cpu_ticks "$pid"); s1=$(sync_ticks "$pid"); l1=$(gen_lost)
    local hz; hz=$(getconf CLK_TCK)
    echo "$out" | awk -v cpu="$(( (t1 - t0) * 100 / hz / SECS ))" -v lost="$(( l1 - l0 ))" \
        -v sync="$(( (s1 - s0) * 100 / hz / SECS ))" '
        /^Rate:/ {rate=$2}
        /^sent packets:/ {sent+=$3}
        /^received packets:/ {recv+=$3}
        /^avg delay:/ {if (avg == "") avg=$3}
        /^max delay:/ {if (max == "" || $3 > max) max=$3}
        END {drop = sent ? (sent-recv)*100/sent : 100;
             printf "%.0f %.2f %s %s %d %d %d\n", rate, drop, avg, max, cpu, lost, sync}'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

bench_server() {
    local name=$1 rate i line
    echo "== $name"
    printf "%-8s %10s %8s %9s %9s %6s %9s %6s\n" offered achieved "drops%" "avg ms" "max ms" "cpu%" "gen lost" "sync%"
    for rate in $RATES; do
        local ach=() drop=() avg=() max=() cpu=() lost=() sync=()
        for i in $(seq "$RUNS"); do
            stop_server; "start_$name"; sleep 1.5
            read -r a d v m c l y < <(run_rate "$rate")
            ach+=("$a"); drop+=("$d"); avg+=("$v"); max+=("$m"); cpu+=("$c"); lost+=("$l"); sync+=("$y")
        done
        printf "%-8s %10s %8s %9s %9s %6s %9s %6s\n" "$rate" \
            "$(printf '%s\n' "${ach[@]}" | median)" "$(printf '%s\n' "${drop[@]}" | median)" \
            "$(printf '%s\n' "${avg[@]}" | median)" "$(printf '%s\n' "${max[@]}" | median)" \
            "$(printf '%s\n' "${cpu[@]}" | median)" "$(printf '%s\n' "${lost[@]}" | median)" \
            "$(printf '%s\n' "${sync[@]}" | median)"
    done
    local best=0
    for rate in $LADDER; do
        local drops=()
        for i in $(seq "$RUNS"); do
            stop_server; "start_$name"; sleep 1.5
            read -r a d _ _ _ _ _ < <(run_rate "$rate")
            drops+=("$d")
        done
        local md; md=$(printf '%s\n' "${drops[@]}" | median)
        if awk -v d="$md" 'BEGIN {exit !(d <= 1.0)}'; then best=$rate; else break; fi
    done
    echo "max offered rate with <= 1% drops: $best/s"
    stop_server
}

for s in ${SERVERS:-pxedeck dnsmasq kea}; do bench_server "$s"; done
