#!/usr/bin/env bash
# bench/memory.sh: dnsgate's resident size with a full cache and with a large allow-list.
#
# Starts nsd (upstream, every name under allowed.test exists) and dnsgate with
# `cache.max_entries: 1000000` and counters and detector on, then fills the
# cache with 1,000,000 unique allowed names (dnsperf at a fixed, bounded rate)
# and reads VmRSS from /proc. Then starts dnsgate with the benchmark allow-list
# padded to 100,000 entries and reads its size idle and after the hot workload.
# Loopback only; everything it starts is stopped by PID on exit. About 2 minutes.
#
# Usage: bench/memory.sh --dnsgate-bin PATH [--names N] [--rate QPS] [--base-port P]
set -u
BENCH=$(cd "$(dirname "$0")" && pwd)
RUN=/tmp/dnsgate-bench/memory-$(date +%Y%m%d-%H%M%S)
# shellcheck source=lib.sh
. "$BENCH/lib.sh"

DNSGATE_BIN=""; NAMES=1000000; RATE=25000; BASE_PORT=5470
while [ $# -gt 0 ]; do
    case "$1" in
        --dnsgate-bin) DNSGATE_BIN=$2; shift 2 ;;
        --names) NAMES=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --base-port) BASE_PORT=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
[ -x "$DNSGATE_BIN" ] || die "--dnsgate-bin PATH is required (a release build: swift build -c release --product dnsgate)"
for v in NAMES RATE BASE_PORT; do case "${!v}" in ''|*[!0-9]*|0) die "$v must be a positive integer" ;; esac; done
for t in dnsperf nsd nsd-control dig python3; do command -v "$t" >/dev/null || die "missing $t (apt-get install -y dnsperf nsd bind9-dnsutils)"; done

mkdir -p "$RUN/pids" "$RUN/logs" "$RUN/conf"
trap 'trap - EXIT; log "stopping everything this run started"; stop_everything; rm -f "$RUN"/names.txt' EXIT
trap 'exit 130' INT TERM

rss() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
stat_of() { # SOCKET PATH -> a value of `dnsgate stats --json`, PATH like cache.entries
    "$DNSGATE_BIN" stats --json --control "$1" 2>/dev/null | python3 -c '
import functools, json, sys
print(functools.reduce(lambda o, k: o[k], sys.argv[1].split("."), json.load(sys.stdin)))' "$2"
}
serve() { # NAME PORT ALLOWFILE MAXENTRIES -> starts dnsgate with a config file, waits for it
    local name=$1 port=$2 d=$RUN/conf/$1
    mkdir -p "$d"
    cat >"$d/dnsgate.yaml" <<EOF
listen: [ "$ADDR:$port" ]
upstreams: [ "$ADDR:$(port_of upstream)" ]
allow: [ "$3" ]
cache:
  max_entries: $4
  max_bytes: 4294967296
detector:
  enabled: true
state_file: $d/state.json
control:
  socket: $d/control.sock
log:
  queries: none
EOF
    spawn "$name" "" "$DNSGATE_BIN" serve --config "$d/dnsgate.yaml"
    wait_ready "$name" "$port" || die "$name did not come up"
}

log "run dir $RUN"
start_upstream ""
P1=$((BASE_PORT + 1)); P2=$((BASE_PORT + 2))

# 1. A cache of NAMES entries.
serve cache "$P1" "$BENCH/policy/allowlist.txt" "$NAMES"
pid=$(our_pids cache)
idle=$(rss "$pid")
awk -v n="$NAMES" 'BEGIN { for (i = 0; i < n; i++) printf "m%d.fill.allowed.test A\n", i }' >"$RUN/names.txt"
log "filling the cache with $NAMES names at $RATE qps"
dnsperf -s "$ADDR" -p "$P1" -d "$RUN/names.txt" -n 1 -c 4 -q 500 -t 5 -Q "$RATE" -l $((NAMES / RATE + 60)) >"$RUN/logs/fill.txt" 2>&1
entries=$(stat_of "$RUN/conf/cache/control.sock" cache.entries)
full=$(rss "$pid")
answered=$(awk '/Queries completed/ { print $3 }' "$RUN/logs/fill.txt")
stop_one cache

# 2. An allow-list of 100,000 entries.
big=$RUN/conf/allowlist-100k.txt
pad_allowlist "$big"
serve small "$P2" "$BENCH/policy/allowlist.txt" 100000
small=$(rss "$(our_pids small)"); stop_one small
serve big "$P2" "$big" 100000
bpid=$(our_pids big)
bigidle=$(rss "$bpid")
printf 'www.allowed.test A\nd1.denied.test A\nhost000042.filler.test A\n' >"$RUN/hot.txt"
dnsperf -s "$ADDR" -p "$P2" -d "$RUN/hot.txt" -c 4 -q 50 -t 2 -l 5 >/dev/null 2>&1
bigbusy=$(rss "$bpid")
listed=$(stat_of "$RUN/conf/big/control.sock" entries)

cat <<EOF

| dnsgate (counters and detector on) | resident MB |
|---|---:|
| idle, 200-entry allow-list, empty cache | $idle |
| after $answered unique allowed names answered: cache holds ${entries:-?} entries (max_entries $NAMES) | $full |
| idle, 200-entry allow-list (second process) | $small |
| idle, ${listed:-?}-entry allow-list | $bigidle |
| 100,000-entry allow-list after 5 s of queries | $bigbusy |

Per cache entry: $(awk -v a="$idle" -v b="$full" -v n="${entries:-0}" 'BEGIN { if (n > 0) printf "%.0f bytes", (b - a) * 1048576 / n; else print "-" }'); per allow entry: $(awk -v a="$small" -v b="$bigidle" -v n="${listed:-0}" 'BEGIN { if (n > 200) printf "%.0f bytes", (b - a) * 1048576 / (n - 200); else print "-" }').
EOF
