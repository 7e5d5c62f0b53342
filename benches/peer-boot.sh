#!/usr/bin/env bash
# The 500-machine mass boot against pxedeck and against dnsmasq (DHCP +
# TFTP) + nginx (HTTP), same simulated machines, same topology, same run.
# Root only; everything happens in two private namespaces.
#
#   cli ── veth ── srv (10.66.0.1: the server(s), core 0)
#   10.66.0.2, and 10.67.0.0/16 made local: the simulator (core 1) relays
#   DHCP as 10.67.0.1 and each machine sends TFTP/HTTP from its lease.
#
# The machines sit on a routed subnet behind a relay because dnsmasq
# answers only port 68 (with an L2 broadcast domain) or a relay on port
# 67; pxedeck answers relays the same way, so both get the same traffic.
# The peers serve what a careful operator would configure by hand:
# dnsmasq tags by option 93 and user class iPXE, one static entry script
# that chains per-MAC scripts, per-host cloud-init files, and a /done/
# location that answers 200.
#
# Usage: sudo benches/peer-boot.sh [pxedeck binary]
#   RUNS (3) alternating runs per server; MACHINES (500); SPREAD (1) s;
#   SERVERS ("pxedeck peers") which to run; PERF=1 records a CPU profile of
#   the servers (perf.data in each run's folder); KEEP=1 keeps the files.
# Needs: dnsmasq-base, nginx-light (or any nginx), iproute2, python3, time.
set -euo pipefail

PXEDECK=$(realpath "${1:-target/release/pxedeck}")
RUNS=${RUNS:-3}
MACHINES=${MACHINES:-500}
SPREAD=${SPREAD:-1}
SERVERS=${SERVERS:-"pxedeck peers"}
WORK=$(mktemp -d /tmp/peer-boot.XXXXXX)
SRV=pxp-srv CLI=pxp-cli
SERVER=10.66.0.1 RELAY=10.67.0.1

cleanup() {
    for ns in $SRV $CLI; do
        for pid in $(ip netns pids $ns 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del $ns 2>/dev/null || true
    done
    [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
cleanup
mkdir -p "$WORK" && chmod 755 "$WORK"  # nginx workers run as nobody

ip netns add $SRV && ip netns add $CLI
ip -n $SRV link set lo up && ip -n $CLI link set lo up
ip -n $SRV link add eth0 type veth peer name eth0 netns $CLI
ip -n $SRV addr add $SERVER/24 dev eth0 && ip -n $SRV link set eth0 up
ip -n $CLI addr add 10.66.0.2/24 dev eth0 && ip -n $CLI link set eth0 up
# The machines' subnet: routed to the relay host, where every address in
# it is local (each simulated machine binds its own lease).
ip -n $SRV route add 10.67.0.0/16 via 10.66.0.2
ip -n $CLI route add local 10.67.0.0/16 dev lo

# --- one world, served two ways -------------------------------------------------
# A fresh copy per run: the done callback edits the inventory.
make_world() {
    local d=$1
    rm -rf "$d"
    "$PXEDECK" bench --prepare "$d" -n "$MACHINES" > /dev/null
    cat > "$d/pxedeck.yaml" <<EOF
server: {address: $SERVER}
dhcp:
  proxy_port: 0
  lease_file: leases.jsonl
  firmware_lease_time: 2m
  pools:
    - {subnet: 10.67.0.0/16, range: 10.67.1.1-10.67.250.250, router: $RELAY, lease_time: 1h}
http: {port: 80, api_listen: 127.0.0.1:9000, api_token: bench}
tftp: {port: 69}
unknown: {policy: hold}
boot_root: boot
inventory: nodes
EOF
}

# The peers' files: the boot root as it is, plus the scripts and configs
# pxedeck would have rendered, written out by hand.
make_peer_tree() {
    local d=$1 www=$1/www
    mkdir -p "$www/nodes"
    ln -s "$d/boot/sim" "$www/sim"
    ln -s "$d/boot/ipxe.efi" "$www/ipxe.efi"
    printf '#!ipxe\nchain http://%s/nodes/${netX/mac:hexhyp}.ipxe || shell\n' $SERVER > "$www/boot.ipxe"
    for ((n = 0; n < MACHINES; n++)); do
        local host mac
        host=$(printf 'node-%03d' $((n + 1)))
        mac=$(printf '52-54-00-aa-%02x-%02x' $((n >> 8)) $((n & 255)))
        printf '#!ipxe\nkernel http://%s/sim/vmlinuz console=ttyS0,115200 ds=nocloud-net;s=http://%s/config/%s/\ninitrd http://%s/sim/initrd\nboot\n' \
            $SERVER $SERVER "$host" $SERVER > "$www/nodes/$mac.ipxe"
        mkdir -p "$www/config/$host"
        printf 'instance-id: %s\n' "$host" > "$www/config/$host/meta-data"
        printf '#cloud-config\nhostname: %s\nruncmd:\n  - curl -fsS -X POST http://%s/done/%s\n' \
            "$host" $SERVER "$host" > "$www/config/$host/user-data"
    done
    cat > "$d/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path $d/tmp;
    proxy_temp_path $d/tmp;
    fastcgi_temp_path $d/tmp;
    uwsgi_temp_path $d/tmp;
    scgi_temp_path $d/tmp;
    server {
        listen $SERVER:80;
        root $www;
        location /done/ { return 200 "ok\n"; }
    }
}
EOF
    mkdir -p "$d/tmp"
}

# --- servers --------------------------------------------------------------------
start_pxedeck() {
    local d=$1
    RUST_LOG=warn ip netns exec $SRV taskset -c 0 "$PXEDECK" --config "$d/pxedeck.yaml" serve \
        > "$d/log" 2>&1 &
    echo $! > "$d/pids"
    for _ in $(seq 100); do
        ip netns exec $SRV curl -sf http://127.0.0.1:9000/healthz > /dev/null && return
        sleep 0.1
    done
    echo "pxedeck did not come up: $(cat "$d/log")" >&2
    exit 1
}
start_peers() {
    local d=$1
    # One core, like pxedeck: one nginx worker. dnsmasq as a careful
    # operator sets it up for a mass boot: TFTP's 50-transfer default
    # raised, per-transaction logging off (pxedeck logs warnings only).
    ip netns exec $SRV taskset -c 0 dnsmasq --no-daemon --conf-file=/dev/null --port=0 \
        --user=root --no-ping --quiet-dhcp --quiet-tftp --log-facility="$d/dnsmasq.log" \
        --dhcp-leasefile="$d/dnsmasq.leases" --dhcp-lease-max=10000 \
        --dhcp-range=10.67.1.1,10.67.250.250,255.255.0.0,1h \
        --dhcp-option=option:router,$RELAY \
        --enable-tftp --tftp-root="$d/boot" --tftp-max=1000 \
        --dhcp-match=set:efi64,option:client-arch,7 \
        --dhcp-match=set:efi64,option:client-arch,9 \
        --dhcp-match=set:httpboot,option:client-arch,16 \
        --dhcp-userclass=set:ipxe,iPXE \
        --dhcp-boot=tag:!ipxe,tag:!efi64,tag:!httpboot,undionly.kpxe,,$SERVER \
        --dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi,,$SERVER \
        --dhcp-boot=tag:!ipxe,tag:httpboot,http://$SERVER/ipxe.efi \
        --dhcp-option-force=tag:httpboot,60,HTTPClient \
        --dhcp-boot=tag:ipxe,http://$SERVER/boot.ipxe \
        > "$d/dnsmasq.out" 2>&1 &
    echo $! > "$d/pids"
    ip netns exec $SRV taskset -c 0 nginx -c "$d/nginx.conf" > "$d/nginx.out" 2>&1 &
    for _ in $(seq 100); do
        ip netns exec $SRV curl -sf http://$SERVER/boot.ipxe > /dev/null && break
        sleep 0.1
    done
    # nginx's master and worker.
    pgrep -f "nginx: (master|worker)" | while read -r pid; do
        [ "$(ip netns identify "$pid")" = $SRV ] && echo "$pid"
    done >> "$d/pids"
}

# Sum of user+system CPU seconds and of peak RSS (MB) over the pids.
cost() {
    python3 - "$@" <<'EOF'
import sys
cpu = rss = 0.0
for pid in sys.argv[1:]:
    try:
        stat = open(f"/proc/{pid}/stat").read()
        fields = stat[stat.rfind(")") + 2:].split()
        cpu += (int(fields[11]) + int(fields[12])) / 100
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                rss += int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
print(f"{cpu:.2f} {rss:.1f}")
EOF
}

stop_all() {
    for pid in $(ip netns pids $SRV); do kill "$pid" 2>/dev/null || true; done
    sleep 0.5
    for pid in $(ip netns pids $SRV); do kill -9 "$pid" 2>/dev/null || true; done
}

# One boot of every machine against whatever serves in $SRV.
run_one() {
    local name=$1 run=$2 d=$WORK/$1-$2
    make_world "$d"
    if [ "$name" = pxedeck ]; then start_pxedeck "$d"; else make_peer_tree "$d" && start_peers "$d"; fi
    # shellcheck disable=SC2046
    read -r cpu0 _ <<< "$(cost $(cat "$d/pids"))"
    if [ -n "${PERF:-}" ]; then
        perf record -q -g -o "$d/perf.data" -p "$(paste -sd, "$d/pids")" > /dev/null 2>&1 &
        local perf=$!
    fi
    # time(1) puts "Command exited with non-zero status N" first when a
    # machine failed; its figures are the last line.
    ip netns exec $CLI taskset -c 1 /usr/bin/time -f "%U %S" -o "$d/client.time" "$PXEDECK" bench -n "$MACHINES" --spread "$SPREAD" \
        --target $SERVER:67 --world "$d" --relay $RELAY --json > "$d/report.json" || true
    # shellcheck disable=SC2046
    read -r cpu1 rss <<< "$(cost $(cat "$d/pids"))"
    [ -z "${perf:-}" ] || { kill -INT "$perf"; wait "$perf" || true; }
    stop_all
    python3 - "$d/report.json" "$name" "$run" "$cpu0" "$cpu1" "$rss" "$(tail -1 "$d/client.time")" >> "$WORK/results.jsonl" <<'EOF'
import json, sys
path, name, run, cpu0, cpu1, rss, client = sys.argv[1:]
r = json.load(open(path))["report"]
p = r["phases"]
ph = lambda k, q: p.get(k, {}).get(q, 0.0)
print(json.dumps({
    "server": name, "run": int(run), "machines": r["machines"],
    "installed": r["outcomes"].get("installed", 0), "errors": len(r["failures"]),
    "first_failure": (r["failures"][:1] or [None])[0],
    "total_s": r["makespan_ms"] / 1000,
    "dhcp_p50": ph("dhcp", "p50_ms"), "dhcp_p99": ph("dhcp", "p99_ms"),
    "loader_p50": ph("loader", "p50_ms"), "loader_p99": ph("loader", "p99_ms"),
    "kernel_p50": ph("kernel", "p50_ms"), "kernel_p99": ph("kernel", "p99_ms"),
    "initrd_p50": ph("initrd", "p50_ms"), "initrd_p99": ph("initrd", "p99_ms"),
    "cpu_s": float(cpu1) - float(cpu0), "rss_mb": float(rss),
    "client_cpu_s": sum(float(x) for x in client.split()),
}))
EOF
    tail -1 "$WORK/results.jsonl" >&2
}

for run in $(seq "$RUNS"); do
    # Alternate the order so neither side always runs on a warmer machine.
    if ((run % 2)); then order=$SERVERS; else order=$(echo "$SERVERS" | tr ' ' '\n' | tac | xargs); fi
    for name in $order; do run_one "$name" "$run"; done
done

python3 - "$WORK/results.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = ["total_s", "dhcp_p50", "dhcp_p99", "loader_p50", "loader_p99", "kernel_p50",
        "kernel_p99", "initrd_p50", "initrd_p99", "cpu_s", "rss_mb", "client_cpu_s"]
sides = [s for s in ("pxedeck", "peers") if any(r["server"] == s for r in rows)]
med = {}
for s in sides:
    mine = [r for r in rows if r["server"] == s]
    med[s] = {k: statistics.median(r[k] for r in mine) for k in keys}
    med[s]["errors"] = sum(r["errors"] for r in mine)
    med[s]["runs"] = len(mine)
names = {"pxedeck": "pxedeck", "peers": "dnsmasq+nginx"}
print(f"{'median of %d runs' % med[sides[0]]['runs']:<22}" + "".join(f"{names[s]:>16}" for s in sides))
for k in keys + ["errors"]:
    print(f"{k:<22}" + "".join(f"{med[s][k]:>16.2f}" for s in sides))
if len(sides) == 2:
    ratios = [p["total_s"] / x["total_s"]
              for x, p in zip(sorted((r for r in rows if r["server"] == "pxedeck"), key=lambda r: r["run"]),
                              sorted((r for r in rows if r["server"] == "peers"), key=lambda r: r["run"]))]
    print(f"\ntotal-time ratio (peers / pxedeck), per run: {', '.join('%.2f' % r for r in ratios)}; "
          f"median {statistics.median(ratios):.2f}")
EOF
