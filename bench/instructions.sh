#!/usr/bin/env bash
# bench/instructions.sh: userspace instructions per query of dnsgate, counted by callgrind.
#
# CPU time per query on this shared 2-core host moves by 5-10 % from run to run, more than most
# single optimisations gain. Instructions retired do not: the same binary and workload give the same
# count to within about 1 %, so two builds can be compared in one run each. This is a guide for
# work on the query path, not a substitute for bench/run.sh: it counts neither kernel time (the
# socket calls, most of the CPU) nor cache misses, and valgrind slows the server about 50-fold, so
# it is driven at 1,500 queries/s, where every read returns one datagram.
#
# Starts nsd (upstream) and dnsgate under valgrind --tool=callgrind on loopback, sends the whole
# workload once to warm the caches, the interner and the detector, zeroes the counters, sends N
# queries, dumps the counts and stops both by PID. All threads are counted (the listener does
# almost all the work; the telemetry and event-loop threads add about 1 %).
#
# Usage: bench/instructions.sh [options] BINARY...
#   --workload a|b|d     a: 20,000 distinct denied names, looped; b: 100 cache-hot names;
#                        d: every query a cache miss, forwarded, into a full cache (110,000
#                        misses warm it past its 100,000 entries, so each insert evicts) [a]
#   --queries N          queries measured after the warm-up [3000]
#   --base-port P        upstream on P, dnsgate on P+1 [5480]
#   --keep DIR           keep each binary's callgrind file there (callgrind_annotate --inclusive=yes)
#   --cache-misses BYTES also simulate the caches, with a last-level cache of BYTES (16-way, 64-byte
#                        lines; 2097152 stands for a core's share of a busy host's L3), and print
#                        level-1 and last-level data misses a query; per function with --keep and
#                        callgrind_annotate --inclusive=yes --show=DLmr,DLmw,D1mr
#   --full-batches       measure with dnsperf flooding the server (-c 16 -q 500 -Q 30000) instead
#                        of 1,500 q/s, so each read returns a full batch as at full load; queries
#                        valgrind's slowness loses are not counted
#   --refcounts          also print the atomic reference counts a query: the locked compare-and-swap
#                        instructions executed in swift_retain, swift_release, their _n forms and
#                        the slow paths they jump to (a count reaching zero, a side table). Retains
#                        and releases of immortal objects (empty arrays, literals) and of nil take
#                        no lock and are counted apart. With --keep, refcounts.BINARY.WORKLOAD there
#                        lists the calls on objects per call site, most first: a retain site's
#                        atomic share is exact (23 instructions immortal, 22 atomic), a release's
#                        is not (18 either way)
#   -h, --help           this text
# Each BINARY is a dnsgate executable; prints "instructions/query  BINARY" for each. Needs valgrind,
# objcopy, dnsperf, nsd and dig (apt-get install -y valgrind binutils dnsperf nsd bind9-dnsutils).
set -u
BENCH=$(cd "$(dirname "$0")" && pwd)
STAMP=$(date +%Y%m%d-%H%M%S)
RUN=/tmp/dnsgate-bench/instructions-$STAMP
ADDR=127.0.0.1
# shellcheck source=lib.sh
. "$BENCH/lib.sh"

WORKLOAD=a; QUERIES=3000; BASE_PORT=5480; KEEP=""; CACHE_LL=""; FULL=""; REFCOUNTS=""; BINARIES=()
while [ $# -gt 0 ]; do
    case "$1" in
        --workload) WORKLOAD=${2:-}; shift 2 ;;
        --queries) QUERIES=${2:-}; shift 2 ;;
        --base-port) BASE_PORT=${2:-}; shift 2 ;;
        --keep) KEEP=${2:-}; shift 2 ;;
        --cache-misses) CACHE_LL=${2:-}; shift 2 ;;
        --full-batches) FULL=1; shift ;;
        --refcounts) REFCOUNTS=1; shift ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option '$1' (see --help)" ;;
        *) BINARIES+=("$1"); shift ;;
    esac
done
[ ${#BINARIES[@]} -ge 1 ] || die "name at least one dnsgate binary (see --help)"
case "$WORKLOAD" in a|b|d) ;; *) die "--workload must be a, b or d" ;; esac
case "$QUERIES" in ''|*[!0-9]*) die "--queries must be a positive integer" ;; esac
case "$CACHE_LL" in '') SIM=() ;; *[!0-9]*) die "--cache-misses takes a size in bytes" ;; *) SIM=(--cache-sim=yes "--LL=$CACHE_LL,16,64") ;; esac
[ -n "$REFCOUNTS" ] && SIM+=(--dump-instr=yes)   # call sites by address
RATE=(-c 4 -q 20 -t 5 -Q 1500)
[ -n "$FULL" ] && RATE=(-c 16 -q 500 -t 5 -Q 30000)
[ "$QUERIES" -ge 100 ] && [ "$QUERIES" -le 100000 ] || die "--queries must be 100..100000"
for t in valgrind callgrind_control callgrind_annotate objcopy objdump dnsperf nsd dig; do
    command -v "$t" >/dev/null 2>&1 || die "missing $t: apt-get install -y valgrind binutils dnsperf nsd bind9-dnsutils"
done
for b in "${BINARIES[@]}"; do [ -x "$b" ] || die "not an executable: $b"; done
for p in "$BASE_PORT" $((BASE_PORT + 1)); do port_busy "$p" && die "port $p is in use: pick another --base-port"; done

mkdir -p "$RUN/pids" "$RUN/logs" "$RUN/q"
[ -n "$KEEP" ] && mkdir -p "$KEEP"
cleanup() { trap - EXIT INT TERM; stop_everything; rm -rf "$RUN/q"; }
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

gen_static "$RUN/q"
case "$WORKLOAD" in
    a) warm="$RUN/q/a_denied.txt" ;;
    b) warm="$RUN/q/b_warm.txt"; for i in $(seq 30); do cat "$RUN/q/b_hot.txt"; done >"$warm" ;;
    d) warm="$RUN/q/d_warm.txt"; awk 'BEGIN { for (i = 0; i < 110000; i++) printf "w%d.allowed.test A\n", i }' >"$warm" ;;
esac
if [ "$WORKLOAD" = d ]; then
    # Names never asked before: each one a miss.
    awk -v n="$QUERIES" 'BEGIN { for (i = 0; i < n; i++) printf "m%d.allowed.test A\n", i }' >"$RUN/q/measured.txt"
else
    # The measured queries repeat the warm-up file from its start (a name seen once before, as at full load).
    awk -v n="$QUERIES" '{ l[NR] = $0 } END { for (i = 0; i < n; i++) print l[i % NR + 1] }' "$warm" >"$RUN/q/measured.txt"
fi

start_upstream ""
dg_port=$((BASE_PORT + 1))
for bin in "${BINARIES[@]}"; do
    out="$RUN/callgrind.out"
    rm -f "$out" "$out".*
    # valgrind 3.19 gives up on the DWARF of Swift 6.3 release builds ("possibly corrupted
    # debuginfo"): run a copy without it. Function names stay (the symbol table).
    objcopy --strip-debug "$bin" "$RUN/dnsgate" || die "objcopy failed on $bin"
    # --compress-strings=no: each dump then names its functions itself and can be read alone.
    spawn dnsgate "" valgrind --tool=callgrind "${SIM[@]}" --callgrind-out-file="$out" --compress-strings=no --compress-pos=no \
        "$RUN/dnsgate" serve --no-config --listen "$ADDR:$dg_port" --upstream "$ADDR:$BASE_PORT" \
        --allow "$BENCH/policy/allowlist.txt" --sinkhole nxdomain --mode enforce \
        --control "$RUN/control.sock" --threads 1 --query-log none
    wait_answer "$dg_port" ready.denied.test "NXDOMAIN*" 240 || die "dnsgate did not come up under valgrind (see $RUN/logs/dnsgate.log)"
    pid=$(our_pids dnsgate | head -1)
    dnsperf -s "$ADDR" -p "$dg_port" -d "$warm" -n 1 -c 4 -q 20 -t 5 -Q 3000 >"$RUN/logs/warm.txt" 2>&1
    callgrind_control -z "$pid" >/dev/null 2>&1
    dnsperf -s "$ADDR" -p "$dg_port" -d "$RUN/q/measured.txt" -n 1 "${RATE[@]}" >"$RUN/logs/measured.txt" 2>&1
    callgrind_control -d "$pid" >/dev/null 2>&1
    sleep 1
    stop_one dnsgate
    done_q=$(awk '/Queries completed/ { print $3 }' "$RUN/logs/measured.txt")
    [ "${done_q:-0}" -gt 0 ] || die "no query answered in the measured run (see $RUN/logs/)"
    [ -f "$out.1" ] || die "callgrind wrote no dump (see $RUN/logs/dnsgate.log)"
    total=$(callgrind_annotate "$out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
    [ -n "$KEEP" ] && cp "$out.1" "$KEEP/callgrind.$(basename "$bin").$WORKLOAD"
    printf '%8d  %s  (workload %s, %d queries answered)\n' $((total / done_q)) "$bin" "$WORKLOAD" "$done_q"
    if [ -n "$CACHE_LL" ]; then
        callgrind_annotate --show=D1mr,D1mw,DLmr,DLmw "$out.1" 2>/dev/null | awk -v q="$done_q" '/PROGRAM TOTALS/ {
            for (i = 1; i <= 7; i += 2) gsub(",", "", $i)
            printf "          data misses a query: level 1 %.1f read, %.1f write; last level %.2f read, %.2f write\n", $1 / q, $3 / q, $5 / q, $7 / q }'
    fi
    if [ -n "$REFCOUNTS" ]; then
        sites="$RUN/refcounts.txt"
        # The addresses of the locked instructions in the reference-counting entry points and their
        # slow paths, in the runtime library the dump names.
        core=$(awk -F= '/^ob=.*libswiftCore\.so$/ { print $2; exit }' "$out.1")
        [ -f "$core" ] || die "the dump names no libswiftCore.so"
        objdump -d --no-show-raw-insn -C "$core" | awk '
            /^[0-9a-f]+ <.*>:$/ { f = ($0 ~ /<swift_(retain|release)(_n)?>:|RefCounts<.*>::(incrementSlow|doDecrementSlow)/); next }
            f && /\tlock / { sub(":", "", $1); print "0x" $1 }' >"$RUN/locks.txt"
        [ -s "$RUN/locks.txt" ] || die "no locked instruction found in $core"
        # Each call site of the four entry points, from the uncompressed dump: "fn=" names the caller,
        # "calls=N" the count, and the next line the site's address and the calls' inclusive cost.
        # The locks' own lines count their executions.
        awk -v q="$done_q" -v out="$sites" -v core="$core" '
            FNR == NR { lock[$1] = 1; next }
            /^ob=/ { ob = substr($0, 4) }
            /^fn=/ { fn = substr($0, 4) }
            /^cfn=/ { cfn = substr($0, 5) }
            /^calls=/ {
                split($1, c, "="); n = c[2]; getline
                if (cfn !~ /^swift_(retain|release)(_n)?$/) next
                all += n
                if ($NF / n < 17) { nilobj += n; next }   # the early return of nil
                key = sprintf("%-16s %s %s", cfn, $1, fn); site[key] += n
                next
            }
            /^0x/ && ob == core && ($1 in lock) { atomic += $3 }   # address, line, count
            END {
                printf "          atomic reference counts a query: %.1f (of %.1f retain and release calls; %.1f on nil, about %.1f on immortal objects)\n",
                    atomic / q, all / q, nilobj / q, (all - nilobj > atomic ? all - nilobj - atomic : 0) / q
                for (k in site) printf "%8.2f  %s\n", site[k] / q, k | "sort -rn > " out
            }' "$RUN/locks.txt" "$out.1"
        [ -n "$KEEP" ] && cp "$sites" "$KEEP/refcounts.$(basename "$bin").$WORKLOAD"
    fi
done
