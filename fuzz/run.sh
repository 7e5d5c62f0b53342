#!/bin/sh
# Coverage-guided fuzzing of pxedeck's input edges with cargo-afl (AFL++) on
# the stable toolchain. A benchmark-style run, not CI: CI keeps proptest
# (tests/dhcp_fuzz.rs, tests/tftp_fuzz.rs).
#
#   fuzz/run.sh [-t SECONDS | -e EXECS] [--save] [--seeds] [TARGET...]
#
#   -t SECONDS  stop each target after this long (default 300)
#   -e EXECS    stop each target after this many executions (e.g. 10000000)
#   --save      afterwards, minimise the queue into corpus/TARGET (keep in git)
#   --seeds     rewrite the hand-made seeds first (after changing a format)
#   TARGET      dhcp tftp http yaml inventory (default: all, one at a time)
#
# Needs: cargo install cargo-afl (it builds AFL++ for this toolchain on
# first use: cargo afl config --build), and apt-get install afl++ for the
# system tools. Findings land in fuzz/out/TARGET/default/{crashes,hangs};
# replay one with ./target/release/TARGET < FILE.
set -eu
cd "$(dirname "$0")"

limit="-V 300"
save=no
seeds=no
targets=""
while [ $# -gt 0 ]; do
    case "$1" in
        -t) limit="-V $2"; shift 2 ;;
        -e) limit="-E $2"; shift 2 ;;
        --save) save=yes; shift ;;
        --seeds) seeds=yes; shift ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
        *) targets="$targets $1"; shift ;;
    esac
done
[ -n "$targets" ] || targets="dhcp tftp http yaml inventory"

nice -n 19 cargo afl build --release
[ "$seeds" = no ] || ./target/release/seeds

# The machine is shared: lowest priority, no CPU pinning, no UI; cores go
# wherever the system sends them (not to AFL's crash handler).
export AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
mkdir -p out
status=0
for t in $targets; do
    [ -d "corpus/$t" ] || { echo "run.sh: no target $t" >&2; exit 2; }
    rm -rf "out/$t"
    echo "== $t ($limit)"
    # shellcheck disable=SC2086 # $limit is two words on purpose
    nice -n 19 cargo afl fuzz $limit -i "corpus/$t" -o "out/$t" \
        "./target/release/$t" > "out/$t.log" 2>&1 || {
        echo "afl-fuzz failed; the end of out/$t.log:"; tail -20 "out/$t.log"; exit 1; }
    stats="out/$t/default/fuzzer_stats"
    get() { sed -n "s/^$1 *: *//p" "$stats"; }
    crashes=$(get saved_crashes)
    echo "   execs $(get execs_done) in $(get run_time) s ($(get execs_per_sec)/s)," \
        "corpus $(get corpus_count), edges $(get bitmap_cvg)," \
        "crashes $crashes, hangs $(get saved_hangs)"
    [ "$crashes" = 0 ] || status=1
    if [ "$save" = yes ]; then
        rm -rf "out/$t.min"
        nice -n 19 cargo afl cmin -i "out/$t/default/queue" -o "out/$t.min" \
            -- "./target/release/$t" > /dev/null
        rm -rf "corpus/$t" && mv "out/$t.min" "corpus/$t"
        echo "   corpus/$t: $(ls "corpus/$t" | wc -l) inputs kept"
    fi
done
# Only this run's scratch folders: another run.sh may be fuzzing beside it.
for t in $targets; do
    rm -rf "/dev/shm/pxedeck-fuzz-$t" "${TMPDIR:-/tmp}/pxedeck-fuzz-$t"
done
exit $status
