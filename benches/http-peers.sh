#!/usr/bin/env bash
# The iPXE entry script under load: pxedeck against nginx serving the same
# bytes, in the same run. Root only (a private namespace, loopback inside
# it); the server side is pinned to core 0, wrk (one thread) to core 1.
#
# pxedeck answers /boot.ipxe?mac=… with the machine's rendered script
# (identify, decide, the script cache); nginx answers the same bytes from
# a static file, which is the least any server can do for that request.
# For each connection count: requests/s and wrk's p50/p99 latency, medians
# of RUNS alternating runs.
#
# Usage: sudo benches/http-peers.sh [pxedeck binary]
#   RUNS (3), SECS (6), CONNS ("50 500"); PERF=FILE records a CPU profile
#   of pxedeck during its first run at each connection count; ERRLOG=FILE
#   keeps wrk's error lines.
# Needs: nginx, wrk, curl, iproute2.
set -euo pipefail

PXEDECK=$(realpath "${1:-target/release/pxedeck}")
RUNS=${RUNS:-3}
SECS=${SECS:-6}
CONNS=${CONNS:-"50 500"}
NS=pxh-srv
WORK=$(mktemp -d /tmp/http-peers.XXXXXX)
MAC=52-54-00-aa-00-00

cleanup() {
    for pid in $(ip netns pids $NS 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del $NS 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
cleanup
mkdir -p "$WORK"
ip netns add $NS
ip -n $NS link set lo up
# 500 connections opened at once overflow the default accept backlog.
ip netns exec $NS sysctl -qw net.core.somaxconn=4096

# --- pxedeck on a bench world ------------------------------------------------------
"$PXEDECK" bench --prepare "$WORK/w" -n 10 > /dev/null
cat > "$WORK/w/pxedeck.yaml" <<EOF
server: {address: 127.0.0.1}
dhcp:
  proxy_port: 0
  lease_file: leases.jsonl
  pools:
    - {subnet: 10.67.0.0/16, range: 10.67.1.1-10.67.250.250, router: 10.67.0.1, lease_time: 1h}
http: {port: 8080, api_listen: 127.0.0.1:9000, api_token: bench}
tftp: {port: 6969}
unknown: {policy: hold}
boot_root: boot
inventory: nodes
EOF
(cd "$WORK/w" && RUST_LOG=warn ip netns exec $NS taskset -c 0 "$PXEDECK" --config pxedeck.yaml serve \
    > "$WORK/pxedeck.log" 2>&1 & disown)
URL_PXEDECK="http://127.0.0.1:8080/boot.ipxe?mac=$MAC"
for _ in $(seq 50); do
    ip netns exec $NS curl -fsS -o /dev/null "$URL_PXEDECK" 2>/dev/null && break
    sleep 0.2
done

# --- nginx with the same bytes -------------------------------------------------------
mkdir -p "$WORK/www" "$WORK/tmp"
ip netns exec $NS curl -fsS -o "$WORK/www/boot.ipxe" "$URL_PXEDECK"
grep -q '^kernel ' "$WORK/www/boot.ipxe" || {
    echo "pxedeck did not serve an install script:" >&2
    cat "$WORK/www/boot.ipxe" "$WORK/pxedeck.log" >&2
    exit 1
}
cat > "$WORK/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type text/plain;
    client_body_temp_path $WORK/tmp;
    proxy_temp_path $WORK/tmp;
    fastcgi_temp_path $WORK/tmp;
    uwsgi_temp_path $WORK/tmp;
    scgi_temp_path $WORK/tmp;
    server { listen 127.0.0.1:8081 backlog=4096; root $WORK/www; }
}
EOF
ip netns exec $NS taskset -c 0 nginx -c "$WORK/nginx.conf" > /dev/null 2>&1 & disown
URL_NGINX="http://127.0.0.1:8081/boot.ipxe?mac=$MAC"
for _ in $(seq 50); do
    ip netns exec $NS curl -fsS -o /dev/null "$URL_NGINX" 2>/dev/null && break
    sleep 0.2
done
cmp -s <(ip netns exec $NS curl -fsS "$URL_NGINX") "$WORK/www/boot.ipxe" \
    || { echo "nginx does not serve the script" >&2; exit 1; }
echo "entry script: $(wc -c < "$WORK/www/boot.ipxe") bytes"

# --- load --------------------------------------------------------------------------
# wrk's latency in ms, whatever unit it printed.
to_ms() { awk '{v=$1; if (v ~ /us$/) v=v/1000; else if (v ~ /ms$/) v=v+0; else if (v ~ /s$/) v=v*1000; printf "%.2f\n", v}'; }
# One run: "req/s p50_ms p99_ms errors".
run_wrk() {
    local url=$1 conns=$2 out
    out=$(ip netns exec $NS taskset -c 1 wrk -t1 -c"$conns" -d"${SECS}s" --latency "$url" 2>&1)
    local rps p50 p99 errors
    rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}' | to_ms)
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}' | to_ms)
    echo "$out" | grep -E "Socket errors|Non-2xx" >> "${ERRLOG:-/dev/null}" || true
    errors=$(echo "$out" | awk '
        /Socket errors/ {for (i = 3; i <= NF; i++) {gsub(",", "", $i); if ($i ~ /^[0-9]+$/) n += $i}}
        /Non-2xx/ {n += $NF} END {print n + 0}')
    echo "$rps $p50 $p99 $errors"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf "%-6s %-8s %12s %9s %9s %7s\n" conns server "req/s" "p50 ms" "p99 ms" errors
for conns in $CONNS; do
    declare -A rps=() p50=() p99=() errs=()
    for _ in $(seq "$RUNS"); do
        for s in pxedeck nginx; do
            url=$URL_PXEDECK; [ $s = nginx ] && url=$URL_NGINX
            if [ -n "${PERF:-}" ] && [ $s = pxedeck ] && [ -z "${rps[$s]:-}" ]; then
                perf record -q -F 999 -g --call-graph dwarf,16384 -o "$PERF.$conns" \
                    -p "$(pgrep -f "$PXEDECK --config pxedeck.yaml serve" | head -1)" -- sleep "$SECS" \
                    > /dev/null 2>&1 &
            fi
            read -r r a b e < <(run_wrk "$url" "$conns")
            rps[$s]+="$r "; p50[$s]+="$a "; p99[$s]+="$b "; errs[$s]+="$e "
        done
    done
    for s in pxedeck nginx; do
        printf "%-6s %-8s %12s %9s %9s %7s\n" "$conns" $s \
            "$(tr ' ' '\n' <<< "${rps[$s]}" | grep . | median)" \
            "$(tr ' ' '\n' <<< "${p50[$s]}" | grep . | median)" \
            "$(tr ' ' '\n' <<< "${p99[$s]}" | grep . | median)" \
            "$(tr ' ' '\n' <<< "${errs[$s]}" | grep . | sort -n | tail -1)"
    done
    wait
    echo "  per-run p99 ms, pxedeck: ${p99[pxedeck]}  nginx: ${p99[nginx]}"
    unset rps p50 p99 errs
done
