#!/usr/bin/env bash
# bench/run.sh: dnsgate against peer DNS servers doing the same job, side by side.
#
# Starts nsd as the one upstream, then dnsgate, unbound, dnsmasq (plus dnsdist,
# pdns-recursor and kresd if installed, and bench/nullresp, the C floor), all
# with the allow-list bench/policy/allowlist.txt and the same upstream; checks
# every policy with dig; runs the workloads with dnsperf in interleaved rounds;
# prints a markdown table of QPS and server CPU microseconds per answered query.
# Loopback (127.0.0.1) only; everything it starts is stopped by PID on exit.
#
# Usage: bench/run.sh [options]
#   --quick              1 round, 3 s runs, workloads a,c (under 2 minutes)
#   --peers-only         do not build or run dnsgate
#   --dnsgate-bin PATH   use this dnsgate binary instead of building one
#   --dnsgate-rev REV    build this committed revision (e.g. HEAD) from a clean
#                        export instead of the work tree (which may hold
#                        half-done edits); scratch path .build-bench-rev
#   --dnsgate-args ARGS  extra arguments for `dnsgate serve` (one string)
#   --threads N          dnsgate UDP listener threads (each with an event loop) [1]
#   --targets LIST       comma list of nullresp,dnsgate,dnsgate-100k,unbound,
#                        dnsmasq,dnsdist,pdns-recursor,kresd [all that are
#                        installed]; dnsgate-100k is dnsgate with the same list
#                        padded to 100,000 entries (cost flat in list size);
#                        dnsgate-nodetector (only when named) is dnsgate with
#                        the detector off, to show what the detector costs
#   --workloads LIST     a,b,c,d [a,b,c,d]:
#                          a denied names (sinkhole)   b allowed, cache-hot
#                          c CI mix 85% hot/10% denied/5% unique miss
#                          d every query a miss (unique allowed names)
#   --rounds N           interleaved rounds, medians reported [3]
#   --duration S         seconds per dnsperf run [auto: fit --budget, 3..8]
#   --budget S           wall-clock budget, build excluded [600]
#   --unpinned           do not pin (default: server on CPU 1, dnsperf + nsd on CPU 0)
#   --clients N          dnsperf -c [16]      --inflight N   dnsperf -q [150]
#   --probe-rate QPS     fixed-rate latency probe, dnsperf -Q [50000]; 0 = no probe
#   --probe-secs S       probe length [2]
#   --probe-rounds N     interleaved probe rounds, medians reported [3]
#   --base-port P        upstream on P, targets on P+1..P+7 [5450]
#   --out DIR            results directory [/tmp/dnsgate-bench/run-STAMP/results]
#   --install            apt-get install -y the missing tools first, and the
#                        optional peers (dnsdist, pdns-recursor, knot-resolver)
#   --verify-only        start the upstream and the targets, run the policy
#                        checks (verify.txt), stop; no load. Exit status 0 only
#                        if every target passed. CI runs this (BenchHarnessTests)
#   --summarize DIR      only print the tables of an earlier run's results DIR
#   -h, --help           this text
set -u
BENCH=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH/.." && pwd)
STAMP=$(date +%Y%m%d-%H%M%S)
ARGS=$(printf '%q ' "$@")
RUN=/tmp/dnsgate-bench/run-$STAMP
# shellcheck source=lib.sh
. "$BENCH/lib.sh"

ALL_TARGETS="nullresp dnsgate dnsgate-100k unbound dnsmasq dnsdist pdns-recursor kresd"
OPTIONAL_TARGETS="dnsgate-nodetector"   # only when named in --targets
TARGETS=""; WORKLOADS=a,b,c,d; ROUNDS=3; DURATION=auto; BUDGET=600; PINNED=1
CLIENTS=16; INFLIGHT=150; PROBE_RATE=50000; PROBE_SECS=2; PROBE_ROUNDS=3; BASE_PORT=5450; OUT=""
INSTALL=0; VERIFY_ONLY=0; PEERS_ONLY=0; DNSGATE_BIN=""; DNSGATE_REV=""; DNSGATE_DESC="given with --dnsgate-bin"; DNSGATE_ARGS=""; DNSGATE_THREADS=1; QUICK=0
# command:package pairs; the optional peers are installed only with --install
REQUIRED_TOOLS="dnsperf:dnsperf nsd:nsd nsd-control:nsd unbound:unbound dnsmasq:dnsmasq-base drill:ldnsutils
    dig:bind9-dnsutils taskset:util-linux ss:iproute2 cc:gcc"
OPTIONAL_TOOLS="dnsdist:dnsdist pdns_recursor:pdns-recursor kresd:knot-resolver"
packages_of() { for t in "$@"; do echo "${t#*:}"; done | awk '!seen[$0]++' | xargs; }   # command:package... -> packages
# shellcheck disable=SC2086
APT_PACKAGES=$(packages_of $REQUIRED_TOOLS); OPTIONAL_PACKAGES=$(packages_of $OPTIONAL_TOOLS)

while [ $# -gt 0 ]; do
    need() { [ $# -ge 2 ] || die "$1 needs a value"; }
    case "$1" in
        --quick) QUICK=1; shift ;;
        --peers-only) PEERS_ONLY=1; shift ;;
        --dnsgate-bin) need "$@"; DNSGATE_BIN=$2; shift 2 ;;
        --dnsgate-rev) need "$@"; DNSGATE_REV=$2; shift 2 ;;
        --dnsgate-args) need "$@"; DNSGATE_ARGS=$2; shift 2 ;;
        --threads) need "$@"; DNSGATE_THREADS=$2; shift 2 ;;
        --targets) need "$@"; TARGETS=$(echo "$2" | tr ',' ' '); shift 2 ;;
        --workloads) need "$@"; WORKLOADS=$2; shift 2 ;;
        --rounds) need "$@"; ROUNDS=$2; shift 2 ;;
        --duration) need "$@"; DURATION=$2; shift 2 ;;
        --budget) need "$@"; BUDGET=$2; shift 2 ;;
        --unpinned) PINNED=0; shift ;;
        --clients) need "$@"; CLIENTS=$2; shift 2 ;;
        --inflight) need "$@"; INFLIGHT=$2; shift 2 ;;
        --probe-rate) need "$@"; PROBE_RATE=$2; shift 2 ;;
        --probe-secs) need "$@"; PROBE_SECS=$2; shift 2 ;;
        --probe-rounds) need "$@"; PROBE_ROUNDS=$2; shift 2 ;;
        --base-port) need "$@"; BASE_PORT=$2; shift 2 ;;
        --out) need "$@"; OUT=$2; shift 2 ;;
        --install) INSTALL=1; shift ;;
        --verify-only) VERIFY_ONLY=1; shift ;;
        --summarize) need "$@"; print_tables "$2"; exit $? ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
if [ "$QUICK" = 1 ]; then
    ROUNDS=1; DURATION=3; WORKLOADS=a,c; PROBE_ROUNDS=1
fi
for v in ROUNDS BUDGET CLIENTS INFLIGHT PROBE_RATE PROBE_SECS PROBE_ROUNDS BASE_PORT DNSGATE_THREADS; do
    case "${!v}" in ''|*[!0-9]*) die "$v must be a non-negative integer, got '${!v}'" ;; esac
done
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 10 ] || die "--rounds must be 1..10"
[ "$PROBE_ROUNDS" -ge 1 ] && [ "$PROBE_ROUNDS" -le 10 ] || die "--probe-rounds must be 1..10"
[ "$BASE_PORT" -ge 1024 ] && [ "$BASE_PORT" -le 65000 ] || die "--base-port must be 1024..65000"
WLS=$(echo "$WORKLOADS" | tr ',' ' ')
for w in $WLS; do case "$w" in a|b|c|d) ;; *) die "unknown workload '$w'" ;; esac; done

# ------------------------------------------------------------------ tools
absent=""
tools=$REQUIRED_TOOLS; [ "$INSTALL" = 1 ] && tools="$tools $OPTIONAL_TOOLS"
for t in $tools; do
    command -v "${t%%:*}" >/dev/null 2>&1 || absent="$absent $t"
done
# shellcheck disable=SC2086
missing=$(packages_of $absent)
if [ -n "$missing" ]; then
    if [ "$INSTALL" = 1 ]; then
        log "installing: $missing"
        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing \
            || die "apt-get install failed"
        # Debian starts packaged daemons on install; this harness runs its own
        for s in nsd unbound dnsmasq dnsdist pdns-recursor kresd@1; do systemctl disable --now "$s" >/dev/null 2>&1; done
    else
        die "missing tools; install them with:
    apt-get install -y $APT_PACKAGES
  (or run bench/run.sh --install). Optional peers: apt-get install -y $OPTIONAL_PACKAGES"
    fi
fi

# ------------------------------------------------------------------ targets
if [ -z "$TARGETS" ]; then
    for t in $ALL_TARGETS; do
        b=$(binary_of "$t")
        if [ -z "$b" ] || command -v "$b" >/dev/null 2>&1; then TARGETS="$TARGETS $t"; fi
    done
fi
[ "$PEERS_ONLY" = 1 ] && TARGETS=$(echo "$TARGETS" | tr ' ' '\n' | grep -v '^dnsgate' | tr '\n' ' ')
TARGETS=$(echo "$TARGETS" | xargs)
for t in $TARGETS; do
    port_of "$t" >/dev/null || die "unknown target '$t' (known: $ALL_TARGETS $OPTIONAL_TARGETS)"
    b=$(binary_of "$t"); [ -z "$b" ] || command -v "$b" >/dev/null 2>&1 || die "target $t needs '$b', which is not installed"
done
[ -n "$TARGETS" ] || die "no targets"

# ------------------------------------------------------------------ plan
read -r -a TA <<<"$TARGETS"; NT=${#TA[@]}; NW=$(echo "$WLS" | wc -w)
NRUNS=$((NT * NW * ROUNDS))
NPROBES=0; [ "$PROBE_RATE" -gt 0 ] && NPROBES=$((NT * NW * PROBE_ROUNDS))
SETUP=$((30 + 4 * NT))
if [ "$DURATION" = auto ]; then
    DURATION=$(( (BUDGET - SETUP - NPROBES * (PROBE_SECS + 2)) / NRUNS - 1 ))
    [ "$DURATION" -gt 8 ] && DURATION=8
    [ "$DURATION" -lt 3 ] && DURATION=3
fi
case "$DURATION" in ''|*[!0-9]*|0) die "--duration must be a positive integer" ;; esac
EST=$(( SETUP + NRUNS * (DURATION + 1) + NPROBES * (PROBE_SECS + 2) ))
[ "$VERIFY_ONLY" = 0 ] || EST=$SETUP
[ "$EST" -le $((BUDGET + BUDGET / 10)) ] || die "plan needs about ${EST}s, over --budget ${BUDGET}s: cut --rounds, --targets, --workloads or --duration"
DEADLINE=$(( $(date +%s) + EST + 120 ))   # hard stop for every loop below

# ------------------------------------------------------------------ dnsgate build
if echo " $TARGETS " | grep -qE ' dnsgate[^ ]* '; then
    if [ -z "$DNSGATE_BIN" ]; then
        t0=$(date +%s)
        build_dnsgate "$DNSGATE_REV" /tmp/dnsgate-bench >&2 \
            || die "dnsgate release build failed (of the work tree: try --dnsgate-rev HEAD, the last commit, or --peers-only)"
        log "build took $(( $(date +%s) - t0 )) s"
    fi
    [ -x "$DNSGATE_BIN" ] || die "dnsgate binary '$DNSGATE_BIN' not found or not executable"
    DNSGATE_BIN=$(cd "$(dirname "$DNSGATE_BIN")" && pwd)/$(basename "$DNSGATE_BIN")
fi

if [ "$PINNED" = 1 ]; then SRV_CPU=1; GEN_CPU=0; MODE=pinned; else SRV_CPU=""; GEN_CPU=""; MODE=unpinned; fi
[ "$PINNED" = 0 ] || [ "$(nproc)" -ge 2 ] || die "pinned mode needs 2 CPUs (use --unpinned)"
gen() { if [ -n "$GEN_CPU" ]; then taskset -c "$GEN_CPU" "$@"; else "$@"; fi; }

for t in upstream $TARGETS; do
    p=$(port_of "$t"); port_busy "$p" && die "port $p (for $t) is already in use: pick another --base-port"
done

OUT=${OUT:-$RUN/results}
mkdir -p "$RUN/pids" "$RUN/logs" "$RUN/q" "$RUN/perf" "$OUT"
cleanup() {
    trap - EXIT INT TERM
    log "stopping everything this run started"
    stop_everything
    rm -rf "$RUN/q" "$RUN/conf/kresd/cache" "$RUN/perf"/probe-*
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

log "run dir $RUN; $MODE; targets: $TARGETS; workloads $WORKLOADS; $ROUNDS round(s) x ${DURATION}s; estimate ${EST}s"
{
    echo "command: bench/run.sh $ARGS"
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')  kernel $(uname -r)  cpus $(nproc)  mode $MODE"
    echo "targets: $TARGETS  workloads: $WORKLOADS  rounds: $ROUNDS  duration: ${DURATION}s  clients: $CLIENTS  inflight: $INFLIGHT  probe: ${PROBE_RATE} qps x ${PROBE_SECS}s x ${PROBE_ROUNDS}"
    echo "versions: dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ { print $2 }'), $(nsd -v 2>&1 | head -1), unbound $(unbound -V 2>/dev/null | awk '/^Version/ { print $2 }'), $(dnsmasq --version 2>/dev/null | head -1 | awk '{ print $1, $3 }')"
    case " $TARGETS " in *" dnsdist "*) echo "  $(dnsdist --version 2>&1 | head -1 | awk '{ print $1, $2 }')" ;; esac
    case " $TARGETS " in *" pdns-recursor "*) echo "  pdns-recursor $(pdns_recursor --version 2>&1 | grep -o 'Recursor [0-9.]*' | head -1 | cut -d' ' -f2)" ;; esac
    case " $TARGETS " in *" kresd "*) echo "  kresd $(kresd --version 2>&1 | grep -o '[0-9][0-9.]*' | head -1)" ;; esac
    [ -n "$DNSGATE_BIN" ] && echo "dnsgate: $DNSGATE_BIN ($DNSGATE_DESC), --threads $DNSGATE_THREADS $DNSGATE_ARGS"
    echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/meta.txt"
kthread_runtime >"$RUN/kthreads-start"; STARTED=$SECONDS

# ------------------------------------------------------------------ start + verify
log "starting nsd upstream on 127.0.0.1:$(port_of upstream)"
start_upstream "$GEN_CPU"
case "$(dig_q "$(port_of upstream)" "leakcheck.denied.test")" in
    "NOERROR 192.0.2.2 ") ;; *) die "upstream does not serve denied.test, so a leak would not show" ;;
esac
declare -A PIDS STATUS
for t in $TARGETS; do
    log "starting $t on 127.0.0.1:$(port_of "$t")"
    configure "$t"
    start_target "$t" "$SRV_CPU" || die "$t did not come up (log: $RUN/logs/$t.log)"
    PIDS[$t]=$(our_pids "$t" | xargs)
done
: >"$OUT/verify.txt"
for t in $TARGETS; do
    if verify "$t" >>"$OUT/verify.txt" 2>&1; then STATUS[$t]=ok; else
        STATUS[$t]=FAIL
        grep -E "^== $t|FAIL" "$OUT/verify.txt" >&2
        [ "$t" = dnsgate ] || die "peer $t failed its policy check: harness bug (see $OUT/verify.txt)"
        log "dnsgate FAILED its policy check; measuring anyway, its rows are marked"
    fi
done
log "policy checks: $(grep -c '^  ok' "$OUT/verify.txt") ok, $(grep -c '^  FAIL' "$OUT/verify.txt") failed ($OUT/verify.txt)"
if [ "$VERIFY_ONLY" = 1 ]; then
    for t in $TARGETS; do echo "$t: ${STATUS[$t]}"; done
    for t in $TARGETS; do [ "${STATUS[$t]}" = ok ] || exit 1; done
    exit 0
fi

# ------------------------------------------------------------------ queries
Q=$RUN/q
gen_static "$Q"
log "warming caches with the hot set"
for t in $TARGETS; do
    gen dnsperf -s "$ADDR" -p "$(port_of "$t")" -d "$Q/b_hot.txt" -n 3 -c 4 -q 20 -t 2 >/dev/null 2>&1
done

CSV=$OUT/runs.csv PROBES=$OUT/probes.csv
echo "round,workload,target,completed,lost,qps,server_cpu_s,us_per_query,upstream_q_per_query,cpu0_busy,cpu1_busy,policy,user_us_per_query" >"$CSV"
echo "round,workload,target,rate,achieved_qps,completed,lost,us_per_query,p50_ms,p99_ms,policy,cpu0_busy,cpu1_busy,cpu1_other" >"$PROBES"

# measure TARGET FILE OUTFILE DNSPERF-ARGS...
#   -> "completed lost qps cpu_s us/q upstream/q cpu0% cpu1% cpu1-other% user-us/q"
# (cpu1-other%: CPU 1 busy with anything but this server, which only means something when pinned;
# user-us/q: the user-mode part of us/q)
measure() {
    local t=$1 file=$2 out=$3 c0 c1 u0 u1 b0 b1; shift 3
    isolate "$t"   # only the measured target runs (lib.sh)
    u0=$(upstream_counts); b0=$(cpu_busy); c0=$(cpu_ticks ${PIDS[$t]})
    gen dnsperf -s "$ADDR" -p "$(port_of "$t")" -d "$file" -c "$CLIENTS" -q "$INFLIGHT" -t 2 "$@" >"$out" 2>&1
    c1=$(cpu_ticks ${PIDS[$t]}); b1=$(cpu_busy); u1=$(upstream_counts)
    resume_all
    # 1 completed 2 lost 3 qps | 4,5 server ticks, 6,7 its user ticks, before, after | 8-10, 11-13 upstream
    # counts | 14-17, 18-21 cpu0/cpu1 busy,total
    echo "$(perf_numbers "$out") ${c0% *} ${c1% *} ${c0#* } ${c1#* } $u0 $u1 $b0 $b1" | awk -v hz="$CLK_TCK" '{
        c = $1; cpu = ($5 - $4) / hz
        printf "%d %d %d %.2f %.2f %.3f %.0f %.0f %.0f %.2f\n", c, $2, $3, cpu, (c > 0) ? 1e6 * cpu / c : 0,
            (c > 0) ? ($11 - $8) / c : 0, 100 * ($18 - $14) / ($19 - $15 + 1e-9), 100 * ($20 - $16) / ($21 - $17 + 1e-9),
            100 * ($20 - $16 - ($5 - $4)) / ($21 - $17 + 1e-9), (c > 0) ? 1e6 * ($7 - $6) / hz / c : 0 }'
}

# query file of workload WL (TAG: this round's unique names); c and d are played once
qfile() { case "$1" in a) echo "$Q/a_denied.txt" ;; b) echo "$Q/b_hot.txt" ;; *) echo "$Q/$1_$2.txt" ;; esac; }
once() { case "$1" in c|d) echo "-n 1" ;; esac; }

for round in $(seq 1 "$ROUNDS"); do
    [ "$(date +%s)" -lt "$DEADLINE" ] || { log "deadline reached: stopping early"; break; }
    tag=r$round$RANDOM
    case " $WLS " in *" c "*|*" d "*) gen_unique "$Q" "$tag" $((150000 * DURATION)) ;; esac
    log "round $round/$ROUNDS (load $(cut -d' ' -f1 /proc/loadavg))"
    for wl in $WLS; do
        # rotate the order every round so that no target always runs first
        k=$(( (round - 1) % NT ))
        for t in "${TA[@]:k}" "${TA[@]:0:k}"; do
            [ "$(date +%s)" -lt "$DEADLINE" ] || break
            # shellcheck disable=SC2046
            set -- $(measure "$t" "$(qfile "$wl" "$tag")" "$RUN/perf/$round-$wl-$t.txt" -l "$DURATION" $(once "$wl"))
            echo "$round,$wl,$t,$1,$2,$3,$4,$5,$6,$7,$8,${STATUS[$t]},${10}" >>"$CSV"
            printf '  r%s %s %-14s %7s qps %6s us/q  lost %s  upstream/q %s\n' "$round" "$wl" "$t" "$3" "$5" "$2" "$6" >&2
        done
    done
    rm -f "$Q/c_$tag.txt" "$Q/d_$tag.txt"
done

# ------------------------------------------------------------------ latency probe (fixed rate)
# Interleaved rounds like the saturated runs, medians reported: one short probe per target moved by
# 10-20 % from run to run, more than the differences it was meant to show. All rounds of a workload
# run before the next workload: a peer that a flood of misses (d) leaves busy or wedged must not
# disturb the other workloads' probes. Within a workload each probe waits for both CPUs to go quiet
# first (settle_cpus): after (d), a peer that could not keep up was still answering its backlog
# during the next target's probe. CPU busy is recorded so that a disturbed probe shows.
if [ "$PROBE_RATE" -gt 0 ]; then
    log "latency probe: $PROBE_RATE qps for ${PROBE_SECS}s per target and workload, $PROBE_ROUNDS round(s)"
    for wl in $WLS; do
        for round in $(seq 1 "$PROBE_ROUNDS"); do
            [ "$(date +%s)" -lt "$DEADLINE" ] || { log "deadline reached: stopping the probes early"; break 2; }
            tag=p$round$RANDOM   # unique names are new each round, or the second round would hit the cache
            case "$wl" in c|d) gen_unique "$Q" "$tag" $((PROBE_RATE * PROBE_SECS + 1000)) ;; esac
            k=$(( (round - 1) % NT ))
            for t in "${TA[@]:k}" "${TA[@]:0:k}"; do
                [ "$(date +%s)" -lt "$DEADLINE" ] || break
                f=$RUN/perf/probe-$round-$wl-$t.txt
                isolate "$t"   # before the wait: a wedged peer must not keep the CPUs busy
                settle_cpus || log "a CPU still busy after 5 s: the probe of $t may be disturbed (cpu1_other in probes.csv)"
                # shellcheck disable=SC2046
                set -- $(measure "$t" "$(qfile "$wl" "$tag")" "$f" -l "$PROBE_SECS" -Q "$PROBE_RATE" -v $(once "$wl"))
                echo "$round,$wl,$t,$PROBE_RATE,$3,$1,$2,$5,$(perf_latency "$f" | tr ' ' ','),${STATUS[$t]},$7,$8,$9" >>"$PROBES"
            done
            rm -f "$Q/c_$tag.txt" "$Q/d_$tag.txt"
        done
    done
fi
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/meta.txt"
echo "kernel threads, CPU during the run: $(kthreads_since "$RUN/kthreads-start" $((SECONDS - STARTED + 1)))" >>"$OUT/meta.txt"

# ------------------------------------------------------------------ dnsgate's own account
# Every answered query must have gone through counters and detector (a run that shed telemetry
# would flatter the CPU figures), and the resident size is part of the result.
for t in $TARGETS; do
    case "$t" in dnsgate*) ;; *) continue ;; esac
    pid=${PIDS[$t]:-}; [ -n "$pid" ] || continue
    dropped=$("$DNSGATE_BIN" stats --json --control "$RUN/conf/$t/control.sock" 2>/dev/null \
        | awk -F'[:,]' '/"telemetry_dropped"/ { gsub(/ /, "", $2); print $2 }')
    rss=$(awk '/^VmRSS/ { printf "%.0f MB", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null)
    hwm=$(awk '/^VmHWM/ { printf "%.0f MB", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null)
    echo "$t: telemetry records dropped ${dropped:-unknown}; resident ${rss:-?} (peak ${hwm:-?})" | tee -a "$OUT/meta.txt" >&2
done

# ------------------------------------------------------------------ table
{ print_tables "$OUT"; echo; grep -E '^(dnsgate[^:]*: telemetry|kernel threads)' "$OUT/meta.txt" | sed 's/^/- /'; } | tee "$OUT/summary.md"
log "raw: $CSV $PROBES; policy proof: $OUT/verify.txt; dnsperf output: $RUN/perf/"
