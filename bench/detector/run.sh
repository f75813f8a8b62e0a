#!/usr/bin/env bash
# bench/detector/run.sh: real DNS tunnels and build-like traffic through dnsgate, on
# loopback, and how much payload gets out before the detector raises its first alert.
#
# What runs (all on 127.0.0.0/8; every process started here is stopped by PID on exit):
#   * dns2tcpd, authoritative for tunnel.test, relaying to a TCP sink (tools.py sink)
#     that timestamps every byte count it receives;
#   * dnsgate on its own loopback address 127.83.X.Y port 53 (dns2tcpc can only use
#     port 53), allow-list "*.tunnel.test A,AAAA,TXT,KEY", upstream.preserve_case on
#     (dns2tcp's labels are case-sensitive base64; dnsgate lower-cases by default);
#   * dns2tcpc -T TXT and -T KEY (the two query types it supports), with and without -c,
#     pushing PAYLOAD random bytes, base64'd, on stdin. A fresh dnsgate for every run,
#     so one run cannot ride on an alert raised by the one before;
#   * the same tunnel with dnsgate's default (preserve_case off): dns2tcp cannot even
#     authenticate;
#   * nsd serving wildcard zones from bench/detector/zones, behind dnsgate, for
#     (1) a low-and-slow exfiltration: a random secret, base32, one ~50-character label
#         per A query under *.cdn.example.net, one query every INTERVAL+U(0,JITTER) s,
#         stopped when the secret is sent or after --slow-max seconds;
#     (2) build-like lookups (registry, source hosting, CDN names with long hash-like
#         labels, A+AAAA, bursts and pauses) that should raise no alert.
#
# How "payload before the first alert" is measured, per tunnel (two runs):
#   stepwise    one dns2tcpc session fed through a FIFO, STEP bytes at a time; after each
#               step wait until the sink holds every byte pushed so far, let the telemetry
#               thread catch up (SETTLE s), then ask `dnsgate alerts`. The first step after
#               which an alert exists bounds the payload that left before it:
#               (pushed - STEP, pushed]. Nothing is in flight between steps, so the bound
#               is exact to one step.
#   full speed  the whole payload at once; seconds = alert firstTime (event time of the
#               query that opened the episode) - the time dns2tcpc was started. The sink's
#               byte count at firstTime is also shown: a lower bound only, because dns2tcpc
#               keeps several data queries in flight and dns2tcpd reorders before writing.
#
# Usage: bench/detector/run.sh [options]
#   --dnsgate-bin PATH   use this dnsgate binary (no build)
#   --dnsgate-rev REV    build this committed revision (e.g. HEAD) from a clean export,
#                        release, scratch path .build-bench-rev [default: build the work
#                        tree, release, scratch path .build-bench]
#   --payload BYTES      random bytes per tunnel, base64'd on stdin [16384]
#   --step BYTES         stepwise increment, in bytes of the base64 text [256]
#   --settle S           pause after each step before asking for alerts [0.3]
#   --tunnels LIST       comma list of TXT,TXT-c,KEY,KEY-c [all]
#   --slow-interval S    low-and-slow: seconds between queries [2]
#   --slow-jitter S      plus uniform 0..S seconds [1]   (2+U(0,1): ~64 queries, ~3 min)
#   --slow-secret BYTES  secret size [2048]        --slow-chunk N  base32 chars/query [52]
#   --slow-max S         stop the low-and-slow client after S seconds [600]
#   --benign-queries N   build-like queries [500]
#   --skip LIST          comma list of tunnels,default-case,slow,benign to leave out
#   --base-port P        nsd on P, dns2tcpd on P+1, sink on P+2 [5750]
#   --out DIR            raw logs and data [/tmp/dnsgate-detbench/run-STAMP]
#   --no-write           do not write bench/detector/RESULTS.md
#   -h, --help           this text
# Needs: dns2tcp (dns2tcpd, dns2tcpc), nsd, python3, dig, ss; root (port 53).
set -u
DET=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$DET/../.." && pwd)
STAMP=$(date +%Y%m%d-%H%M%S)
CMDLINE="bench/detector/run.sh$(printf ' %q' "$@")"
TOOLS="$DET/tools.py"

DNSGATE_BIN=""; DNSGATE_REV=""; PAYLOAD=16384; STEP=256; SETTLE=0.3; TUNNELS="TXT,TXT-c,KEY,KEY-c"
SLOW_INTERVAL=2; SLOW_JITTER=1; SLOW_SECRET=2048; SLOW_CHUNK=52; SLOW_MAX=600; BENIGN_QUERIES=500
SKIP=""; BASE_PORT=5750; RUN=""; WRITE=1

# die, log and the processes-by-PID helpers (spawn, our_pids, running, stop_one, stop_everything),
# shared with bench/run.sh
# shellcheck source=../lib.sh
. "$DET/../lib.sh"
usage() { sed -n '2,/^# Needs/p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    need() { [ $# -ge 2 ] || die "$1 needs a value"; }
    case "$1" in
        --dnsgate-bin) need "$@"; DNSGATE_BIN=$2; shift 2 ;;
        --dnsgate-rev) need "$@"; DNSGATE_REV=$2; shift 2 ;;
        --payload) need "$@"; PAYLOAD=$2; shift 2 ;;
        --step) need "$@"; STEP=$2; shift 2 ;;
        --settle) need "$@"; SETTLE=$2; shift 2 ;;
        --tunnels) need "$@"; TUNNELS=$2; shift 2 ;;
        --slow-interval) need "$@"; SLOW_INTERVAL=$2; shift 2 ;;
        --slow-jitter) need "$@"; SLOW_JITTER=$2; shift 2 ;;
        --slow-secret) need "$@"; SLOW_SECRET=$2; shift 2 ;;
        --slow-chunk) need "$@"; SLOW_CHUNK=$2; shift 2 ;;
        --slow-max) need "$@"; SLOW_MAX=$2; shift 2 ;;
        --benign-queries) need "$@"; BENIGN_QUERIES=$2; shift 2 ;;
        --skip) need "$@"; SKIP=",$2,"; shift 2 ;;
        --base-port) need "$@"; BASE_PORT=$2; shift 2 ;;
        --out) need "$@"; RUN=$2; shift 2 ;;
        --no-write) WRITE=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
for v in PAYLOAD STEP SLOW_SECRET SLOW_CHUNK SLOW_MAX BENIGN_QUERIES BASE_PORT; do
    case "${!v}" in ''|*[!0-9]*) die "$v must be a whole number" ;; esac
done
[ "$STEP" -ge 1 ] && [ "$PAYLOAD" -ge 1 ] || die "--step and --payload must be at least 1"
[ "$SLOW_CHUNK" -ge 1 ] && [ "$SLOW_CHUNK" -le 63 ] || die "--slow-chunk must be 1..63 (one label)"
skipped() { case "$SKIP" in *",$1,"*) return 0 ;; esac; return 1; }

for t in dns2tcpd dns2tcpc nsd python3 dig ss dd mkfifo; do
    command -v "$t" >/dev/null || die "$t not found (Debian: dns2tcp nsd python3 bind9-dnsutils iproute2)"
done
[ "$(id -u)" = 0 ] || die "needs root: dnsgate must listen on port 53 for dns2tcpc"

RUN=${RUN:-/tmp/dnsgate-detbench/run-$STAMP}
mkdir -p "$RUN/pids" "$RUN/logs" || die "cannot create $RUN"
NSD_PORT=$BASE_PORT; D2T_PORT=$((BASE_PORT + 1)); SINK_PORT=$((BASE_PORT + 2))

# ------------------------------------------------------------------ processes, by PID only (lib.sh)
# wait_exit NAME SECONDS: 0 if it exited in time (polled every 0.1 s)
wait_exit() { local i; for i in $(seq 1 $(($2 * 10))); do running "$1" || return 0; sleep 0.1; done; return 1; }
cleanup() { exec 7>&- 2>/dev/null; stop_everything; }
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

udp_busy() { ss -Hlnu 2>/dev/null | awk -v a="$1" '$4 == a { f = 1 } END { exit !f }'; }
tcp_busy() { ss -Hlnt 2>/dev/null | awk -v a="$1" '$4 == a { f = 1 } END { exit !f }'; }
wait_listen() { # PROTO ADDR:PORT TRIES(0.1 s)
    local i; for i in $(seq 1 "$3"); do "${1}_busy" "$2" && return 0; sleep 0.1; done; return 1; }
for p in $NSD_PORT $D2T_PORT $SINK_PORT; do
    udp_busy "127.0.0.1:$p" || tcp_busy "127.0.0.1:$p" && die "port $p is in use; pick another --base-port"
done
GATE=""
for i in $(seq 1 20); do
    a="127.83.$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))"
    udp_busy "$a:53" || tcp_busy "$a:53" || { GATE=$a; break; }
done
[ -n "$GATE" ] || die "no free 127.83.x.y:53"

# ------------------------------------------------------------------ dnsgate binary
if [ -z "$DNSGATE_BIN" ]; then
    build_dnsgate "$DNSGATE_REV" /tmp/dnsgate-detbench >"$RUN/logs/build.log" \
        || die "release build failed, see $RUN/logs/build.log (of the work tree: try --dnsgate-rev HEAD)"
else
    DNSGATE_DESC="$DNSGATE_BIN (given)"
fi
[ -x "$DNSGATE_BIN" ] || die "no dnsgate binary at $DNSGATE_BIN"

# ------------------------------------------------------------------ pieces
# start_gate NAME ALLOW_TEXT UPSTREAM PRESERVE_CASE(0|1): a fresh dnsgate on $GATE:53
start_gate() {
    local name=$1 dir="$RUN/$1" i
    mkdir -p "$dir"
    printf '%s\n' "$2" >"$dir/allow.txt"
    {
        echo "state_file: \"$dir/state.json\""
        echo "metrics: { listen: \"off\" }"
        [ "$4" = 1 ] && echo "upstream: { preserve_case: true }"
    } >"$dir/dnsgate.yaml"
    spawn "gate-$name" "" "$DNSGATE_BIN" serve --config "$dir/dnsgate.yaml" --listen "$GATE:53" \
        --allow "$dir/allow.txt" --upstream "$3" --control "$dir/control.sock" \
        --query-log all --query-log-file "$dir/queries.jsonl"
    for i in $(seq 1 100); do grep -q "dnsgate started" "$RUN/logs/gate-$name.log" 2>/dev/null && return 0; sleep 0.1; done
    die "dnsgate did not start, see $RUN/logs/gate-$name.log"
}
# alerts NAME: saves `dnsgate alerts --json` and prints "count first_time first_kind kinds"
alerts() {
    "$DNSGATE_BIN" alerts --json --control "$RUN/$1/control.sock" >"$RUN/$1/alerts.jsonl" 2>>"$RUN/logs/cli.log" \
        || { echo "0 - - -"; return; }
    python3 "$TOOLS" alerts "$RUN/$1/alerts.jsonl"
}
start_sink() { # NAME: a fresh sink for one dns2tcp session
    spawn "sink-$1" "" python3 "$TOOLS" sink "$SINK_PORT" "$RUN/$1/sink.tsv" 180
    wait_listen tcp "127.0.0.1:$SINK_PORT" 50 || die "sink did not start"
}
sink_bytes() { local l; l=$(tail -n 1 "$RUN/$1/sink.tsv" 2>/dev/null); echo "${l##* }" | grep -E '^[0-9]+$' || echo 0; }
sub() { python3 -c 'import sys; print("%.3f" % (float(sys.argv[1]) - float(sys.argv[2])))' "$1" "$2"; }
now() { date +%s.%N; }

ROWS=()   # markdown rows, in order
row() { local IFS='|'; ROWS+=("|$*|"); }

# ------------------------------------------------------------------ dns2tcpd + payload
head -c "$PAYLOAD" /dev/urandom | base64 >"$RUN/payload.b64"
PAYLOAD_LEN=$(wc -c <"$RUN/payload.b64")
need_tunnel=0
skipped tunnels || need_tunnel=1
skipped default-case || need_tunnel=1
if [ "$need_tunnel" = 1 ]; then
    mkdir -p "$RUN/dns2tcpd/chroot"
    cat >"$RUN/dns2tcpd/dns2tcpd.conf" <<EOF
listen = 127.0.0.1
port = $D2T_PORT
user = nobody
chroot = $RUN/dns2tcpd/chroot
domain = tunnel.test
resources = sink:127.0.0.1:$SINK_PORT
EOF
    spawn dns2tcpd "" dns2tcpd -F -f "$RUN/dns2tcpd/dns2tcpd.conf"
    wait_listen udp "127.0.0.1:$D2T_PORT" 50 || die "dns2tcpd did not start, see $RUN/logs/dns2tcpd.log"
fi
TUNNEL_ALLOW="*.tunnel.test  A,AAAA,TXT,KEY  # a vendor wildcard someone opened for TXT"

# tunnel_full NAME TYPE COMPFLAG PRESERVE: sets F_T0 F_T1 (client start/end), F_N F_FT F_K1 F_KINDS (alerts)
tunnel_full() {
    local name=$1 t0 t1 n ft k1 kinds
    start_gate "$name" "$TUNNEL_ALLOW" "127.0.0.1:$D2T_PORT" "$4"
    start_sink "$name"
    t0=$(now)
    SPAWN_STDIN="$RUN/payload.b64" spawn "client-$name" "" dns2tcpc -z tunnel.test -r sink -T "$2" $3 -l - "$GATE"
    wait_exit "client-$name" 90 || log "$name: dns2tcpc still running after 90 s, stopping it"
    t1=$(now)
    stop_one "client-$name"
    sleep 0.5
    read -r n ft k1 kinds < <(alerts "$name")
    stop_one "gate-$name"; stop_one "sink-$name"
    F_T0=$t0; F_T1=$t1; F_N=$n; F_FT=$ft; F_K1=$k1; F_KINDS=$kinds
}

# tunnel_steps NAME TYPE COMPFLAG: sets S_LO S_HI, payload bytes around the first alert ("-" if none)
tunnel_steps() {
    local name=$1 steps i pushed=0 prev=0 have n ft k1 kinds j hit=""
    start_gate "$name" "$TUNNEL_ALLOW" "127.0.0.1:$D2T_PORT" 1
    start_sink "$name"
    mkfifo "$RUN/$name/stdin.fifo"
    exec 7<>"$RUN/$name/stdin.fifo"        # read-write: never blocks; closing it is the client's EOF
    SPAWN_STDIN="$RUN/$name/stdin.fifo" spawn "client-$name" "" dns2tcpc -z tunnel.test -r sink -T "$2" $3 -l - "$GATE"
    sleep 1
    read -r n ft k1 kinds < <(alerts "$name")
    [ "$n" != 0 ] && hit="0 0"
    steps=$(((PAYLOAD_LEN + STEP - 1) / STEP))
    for i in $(seq 1 "$steps"); do
        [ -n "$hit" ] && break
        running "client-$name" || { log "$name: dns2tcpc exited early"; break; }
        dd if="$RUN/payload.b64" bs="$STEP" skip=$((i - 1)) count=1 status=none >&7
        prev=$pushed; pushed=$((i * STEP)); [ "$pushed" -gt "$PAYLOAD_LEN" ] && pushed=$PAYLOAD_LEN
        for j in $(seq 1 200); do have=$(sink_bytes "$name"); [ "$have" -ge "$pushed" ] && break; sleep 0.05; done
        [ "$have" -ge "$pushed" ] || log "$name: sink has $have of $pushed bytes after 10 s"
        sleep "$SETTLE"
        read -r n ft k1 kinds < <(alerts "$name")
        [ "$n" != 0 ] && hit="$prev $pushed"
    done
    exec 7>&-
    wait_exit "client-$name" 30 || log "$name: dns2tcpc still running 30 s after EOF, stopping it"
    stop_one "client-$name"; stop_one "gate-$name"; stop_one "sink-$name"
    read -r S_LO S_HI <<<"${hit:-- -}"
}

# tunnel_trial NAME TYPE COMPFLAG BYTES: fresh dnsgate, one session pushing the first BYTES of the
# payload at full speed; 0 if any alert was raised by the end of it
tunnel_trial() {
    local name=$1 n ft k1 kinds
    start_gate "$name" "$TUNNEL_ALLOW" "127.0.0.1:$D2T_PORT" 1
    start_sink "$name"
    head -c "$4" "$RUN/payload.b64" >"$RUN/$name/payload"
    SPAWN_STDIN="$RUN/$name/payload" spawn "client-$name" "" dns2tcpc -z tunnel.test -r sink -T "$2" $3 -l - "$GATE"
    wait_exit "client-$name" 60 || log "$name: dns2tcpc still running after 60 s, stopping it"
    stop_one "client-$name"; sleep 0.5
    read -r n ft k1 kinds < <(alerts "$name")
    stop_one "gate-$name"; stop_one "sink-$name"
    echo "$4 $n $k1" >>"$RUN/bisect.log"
    [ "$n" != 0 ]
}
# tunnel_bisect TAG TYPE COMPFLAG: smallest transfer (in STEP units) that is flagged, assuming a
# bigger transfer is flagged whenever a smaller one is; sets B_LO B_HI (bytes), "-" if the whole
# payload is not flagged. At most ~log2(payload/STEP)+1 trials.
tunnel_bisect() {
    local lo=0 hi=$(((PAYLOAD_LEN + STEP - 1) / STEP)) mid i bytes
    B_LO=-; B_HI=-
    tunnel_trial "bisect-$1-all" "$2" "$3" "$PAYLOAD_LEN" || return 0
    for i in $(seq 1 30); do
        [ $((hi - lo)) -le 1 ] && break
        mid=$(((lo + hi) / 2)); bytes=$((mid * STEP))
        if tunnel_trial "bisect-$1-$bytes" "$2" "$3" "$bytes"; then hi=$mid; else lo=$mid; fi
    done
    B_LO=$((lo * STEP)); B_HI=$((hi * STEP)); [ "$B_HI" -gt "$PAYLOAD_LEN" ] && B_HI=$PAYLOAD_LEN
    return 0
}

TABLE_HEAD="| traffic through dnsgate | payload | smallest flagged transfer (bisection) | s to 1st alert (whole payload) | sink bytes at 1st alert (lower bound) | same session fed in $STEP B steps with pauses: payload before 1st alert | whole transfer | alerts: first → all kinds |"
TABLE_SEP="|---|---|---|---|---|---|---|---|"

if ! skipped tunnels; then
    for t in $(echo "$TUNNELS" | tr ',' ' '); do
        case "$t" in TXT|KEY) type=$t; comp="" ;; TXT-c|KEY-c) type=${t%-c}; comp="-c" ;; *) die "unknown tunnel '$t'" ;; esac
        label="dns2tcp -T $type${comp:+ -c}"
        log "$label: bisection, $STEP-byte resolution"
        tunnel_bisect "$t" "$type" "$comp"
        if [ "$B_LO" = "-" ]; then bis_txt="not flagged at $PAYLOAD_LEN B"; else bis_txt="$B_LO < B ≤ $B_HI"; fi
        log "$label: stepwise, $STEP-byte steps"
        tunnel_steps "steps-$t" "$type" "$comp"; lo=$S_LO; hi=$S_HI
        log "$label: full speed"
        tunnel_full "full-$t" "$type" "$comp" 1; t0=$F_T0; t1=$F_T1; ft=$F_FT; kinds=$F_KINDS; n=$F_N; k1=$F_K1
        total=$(sink_bytes "full-$t")
        if [ "$ft" = "-" ]; then secs="no alert"; at="–"; else secs="$(sub "$ft" "$t0") s"; at="$(python3 "$TOOLS" sink-at "$RUN/full-$t/sink.tsv" "$ft") B"; fi
        sk1=$(python3 "$TOOLS" alerts "$RUN/steps-$t/alerts.jsonl" | awk '{ print $3 }')
        if [ "$lo" = "-" ]; then steps_txt="no alert in $PAYLOAD_LEN B"
        elif [ "$hi" = 0 ]; then steps_txt="0 B (alert during session setup)"
        else steps_txt="$lo < B ≤ $hi ($sk1)"; fi
        [ "$total" -lt "$PAYLOAD_LEN" ] && total_txt="$total of $PAYLOAD_LEN B (incomplete)" || total_txt="$total B"
        row " $label " " $PAYLOAD B random, base64: $PAYLOAD_LEN B " " **$bis_txt** " " $secs " " $at " " $steps_txt " \
            " $total_txt in $(sub "$t1" "$t0") s " " ${k1} → ${kinds//,/, } ($n) "
        log "$label: bisection ($B_LO, $B_HI], stepwise ($lo, $hi], full speed ${secs}, kinds $kinds"
    done
fi

if ! skipped default-case; then
    log "dns2tcp -T TXT with dnsgate's default (preserve_case off)"
    head -c 2048 "$RUN/payload.b64" >"$RUN/payload-2k.b64"
    name=default-case
    start_gate "$name" "$TUNNEL_ALLOW" "127.0.0.1:$D2T_PORT" 0
    start_sink "$name"
    t0=$(now)
    SPAWN_STDIN="$RUN/payload-2k.b64" spawn "client-$name" "" dns2tcpc -z tunnel.test -r sink -T TXT -l - "$GATE"
    wait_exit "client-$name" 60 || log "$name: dns2tcpc still running after 60 s, stopping it"
    t1=$(now); stop_one "client-$name"; sleep 0.5
    read -r n ft k1 kinds < <(alerts "$name")
    stop_one "gate-$name"; stop_one "sink-$name"
    if grep -qi "authentication failed" "$RUN/logs/client-$name.log"; then auth="dns2tcpc: \"Authentication Failed\""; else auth="dns2tcpc did not report an authentication failure (see logs/client-$name.log)"; fi
    row " dns2tcp -T TXT, dnsgate default (upstream.preserve_case off) " " 2048 B base64 " " – " " – " " $(sink_bytes "$name") B " " – " \
        " $auth, $(sub "$t1" "$t0") s; no tunnel at all " " ${k1} → ${kinds//,/, } ($n) "
fi

if ! skipped slow || ! skipped benign; then
    mkdir -p "$RUN/nsd"
    {
        cat <<EOF
server:
    ip-address: 127.0.0.1@$NSD_PORT
    do-ip6: no
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "$RUN/nsd"
    pidfile: "$RUN/nsd/nsd.pid"
    database: ""
    zonelistfile: "$RUN/nsd/zone.list"
    xfrdfile: "$RUN/nsd/xfrd.state"
    xfrdir: "$RUN/nsd"
    logfile: "$RUN/nsd/nsd.log"
    verbosity: 1
    refuse-any: yes
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
EOF
        for z in example.com example.org example.net example-cdn.test; do
            printf 'zone:\n    name: %s\n    zonefile: "%s/zones/%s.zone"\n' "$z" "$DET" "$z"
        done
    } >"$RUN/nsd/nsd.conf"
    spawn nsd "" nsd -d -c "$RUN/nsd/nsd.conf"
    ok=0
    for i in $(seq 1 50); do
        dig @127.0.0.1 -p "$NSD_PORT" +time=1 +tries=1 +short x.cdn.example.net A 2>/dev/null | grep -q 192.0.2.10 && { ok=1; break; }
        sleep 0.1
    done
    [ "$ok" = 1 ] || die "nsd did not answer, see $RUN/nsd/nsd.log"
fi

if ! skipped slow; then
    name=slow
    nq=$(( ( (SLOW_SECRET * 8 + 4) / 5 + SLOW_CHUNK - 1) / SLOW_CHUNK ))
    log "low-and-slow: $SLOW_SECRET B secret, base32, $SLOW_CHUNK chars/query, $nq queries, every ${SLOW_INTERVAL}+U(0,${SLOW_JITTER}) s (max ${SLOW_MAX} s)"
    start_gate "$name" "*.cdn.example.net  A,AAAA  # a CDN-shaped wildcard" "127.0.0.1:$NSD_PORT" 0
    spawn "client-$name" "" python3 "$TOOLS" slow "$GATE" 53 "$RUN/$name/sent.tsv" --zone cdn.example.net \
        --secret-bytes "$SLOW_SECRET" --chunk "$SLOW_CHUNK" --interval "$SLOW_INTERVAL" --jitter "$SLOW_JITTER" --max-seconds "$SLOW_MAX"
    wait_exit "client-$name" $((SLOW_MAX + 30)) || log "slow: client still running, stopping it"
    stop_one "client-$name"; sleep 0.5
    read -r n ft k1 kinds < <(alerts "$name")
    stop_one "gate-$name"
    t0=$(awk '!/^#/ { print $1; exit }' "$RUN/$name/sent.tsv")
    read -r q_all b_all c_all < <(python3 "$TOOLS" sent-at "$RUN/$name/sent.tsv" 1e12)
    t_last=$(awk '!/^#/ { t = $1 } END { print t }' "$RUN/$name/sent.tsv")
    if [ "$ft" = "-" ]; then
        before="no alert"; secs="no alert"
    else
        read -r q b c < <(python3 "$TOOLS" sent-at "$RUN/$name/sent.tsv" "$ft")
        before="**$b B of secret** ($c base32 chars, query $q of $q_all)"; secs="$(sub "$ft" "$t0") s"
    fi
    row " low-and-slow: base32 labels under \`*.cdn.example.net\`, 1 A query / ${SLOW_INTERVAL}–$(python3 -c "print('%g' % ($SLOW_INTERVAL + $SLOW_JITTER))") s " \
        " $SLOW_SECRET B secret = $c_all chars in $q_all queries of ≤ $SLOW_CHUNK " " $before " " $secs " " – " " – " \
        " $b_all B in $(sub "$t_last" "$t0") s " " ${k1} → ${kinds//,/, } ($n) "
    log "slow: $before after $secs; kinds $kinds"
fi

if ! skipped benign; then
    name=benign
    log "build-like traffic: $BENIGN_QUERIES queries"
    start_gate "$name" "$(printf '%s\n' '*.example.org  # package registries and mirrors' '*.example.com  # source hosting, image registry' \
        '*.cdn.example.net' '*.r2.example.net' '*.lb.example.net' '*.ingest.example.net' '*.objects.example-cdn.test  # content-addressed artifacts')" \
        "127.0.0.1:$NSD_PORT" 0
    spawn "client-$name" "" python3 "$TOOLS" benign "$GATE" 53 "$RUN/$name/sent.tsv" --queries "$BENIGN_QUERIES" --max-seconds 600
    wait_exit "client-$name" 630 || log "benign: client still running, stopping it"
    stop_one "client-$name"; sleep 0.5
    read -r n ft k1 kinds < <(alerts "$name")
    stop_one "gate-$name"
    summary=$(tail -n 1 "$RUN/logs/client-$name.log")
    nq=$(grep -vc '^#' "$RUN/$name/sent.tsv"); nn=$(awk -F'\t' '!/^#/ { print $6 }' "$RUN/$name/sent.tsv" | sort -u | wc -l)
    nh=$(awk -F'\t' '!/^#/ && $6 ~ /objects\.example-cdn\.test$/ { print $6 }' "$RUN/$name/sent.tsv" | sort -u | wc -l)
    t0=$(awk '!/^#/ { print $1; exit }' "$RUN/$name/sent.tsv"); t_last=$(awk '!/^#/ { t = $1 } END { print t }' "$RUN/$name/sent.tsv")
    [ "$n" = 0 ] && verdict="**0 alerts**" || verdict="**$n alert(s)**: $kinds"
    row " build-like: registry, source hosting, CDN ids, $nh content-addressed 40-hex names; A+AAAA, bursts " \
        " $nq queries, $nn distinct names " " – " " – " " – " " – " " $nq queries in $(sub "$t_last" "$t0") s " " $verdict "
    log "benign: $summary; alerts $n"
fi

# ------------------------------------------------------------------ report
{
    echo "$TABLE_HEAD"; echo "$TABLE_SEP"
    for r in "${ROWS[@]}"; do echo "$r"; done
} >"$RUN/table.md"
cat "$RUN/table.md"

if [ "$WRITE" = 1 ]; then
    cat >"$DET/RESULTS.md" <<EOF
# Detector against real tunnels and live build-like traffic

Command: \`$CMDLINE\`
Date: $(date -u '+%Y-%m-%d %H:%M UTC'); dnsgate: $DNSGATE_DESC; dns2tcp $(dns2tcpc 2>&1 | sed -n 's/^dns2tcp v\([0-9.]*\).*/\1/p' | head -n 1); default detector settings.
Raw data (logs, alerts, sink timestamps, query logs): \`$RUN\` on the machine that ran it.

$(cat "$RUN/table.md")

How to read it:

* **payload** is what the tunnel carried: $PAYLOAD random bytes, base64'd (so ×3/4 for raw bytes),
  on dns2tcpc's stdin, relayed by dns2tcpd to a TCP sink on loopback. Every run gets a fresh
  dnsgate (allow-list \`$TUNNEL_ALLOW\`, \`upstream.preserve_case: true\`), so no run
  inherits an episode from another.
* **smallest flagged transfer (bisection)**: a fresh dnsgate and one dns2tcpc session per trial,
  pushing the first N bytes of the payload at full speed; bisection over N in $STEP-byte units
  (trials in \`bisect.log\`). The answer is exact to one step if a bigger transfer is flagged whenever
  a smaller one is. A trial includes its session's setup and teardown queries, as a real transfer would.
* **same session fed in steps with pauses**: one dns2tcpc session fed $STEP bytes at a time through a FIFO;
  after each step the harness waits until the sink holds every byte pushed so far, then ${SETTLE} s,
  and asks \`dnsgate alerts --json\`; nothing is in flight between steps. The pauses fill the session with
  dns2tcpc's idle polls (short names), which pull the mean subdomain length under 50 and the
  entropy down: an interactive tunnel's shape. The result then depends on how many polls land
  between steps (it moved between ~1 KB with \`tunnel\` and ~3.8 KB with \`volume\` for KEY in two development runs),
  so the bisection column is the headline; this one shows the idle-tunnel case, kind in brackets.
* **s to 1st alert**: a second session pushing the whole payload at once; the alert's \`firstTime\` (event
  time of the query that opened the episode) minus the time dns2tcpc was started, for the whole payload. For the
  low-and-slow row: minus the first query's send time.
* **sink bytes at 1st alert**: what the sink had received by \`firstTime\` in the full-speed run. Only a
  lower bound on what had passed dnsgate: dns2tcpc keeps several data queries in flight and
  dns2tcpd writes them to the sink in order, so the alert can come before the first sink write.
* **alerts**: the kind of the first alert → every kind raised over the whole run (count of alerts).
* **low-and-slow**: a $SLOW_SECRET-byte random secret, base32 (lower case), one label of ≤ $SLOW_CHUNK characters per A
  query under the allowed wildcard \`*.cdn.example.net\`, answered by nsd's wildcard zone
  (\`bench/detector/zones/\`), one query every ${SLOW_INTERVAL} s + U(0, ${SLOW_JITTER}) s; "B of secret" counts the
  secret bytes in the queries sent up to and including the one whose time is the alert's \`firstTime\`.
* **default preserve_case off**: dnsgate lower-cases names upstream, dns2tcp's base64 labels no
  longer match, and dns2tcpc gives up at authentication: no payload moves at all.
  Real tunnels therefore need the allow-list *and* \`preserve_case: true\` to get anywhere; the rows
  above measure that worst case.
* **build-like**: live queries from \`tools.py benign\` (seeded): registries and mirrors
  (\`*.example.org\`), source hosting and an image registry with 12-digit account labels
  (\`*.example.com\`), CDN distribution ids (\`d\` + 13 characters), 32-hex storage-account labels,
  load-balancer names with hex and digits, and one fresh 40-hex content-addressed name per artifact
  under \`*.objects.example-cdn.test\`, each as A then AAAA, in bursts with exponential pauses.
  The offline replay of \`../shared/corpora\` through \`dnsgate analyze\` is in \`TUNING.md\`.
EOF
    log "wrote $DET/RESULTS.md"
fi
log "raw data in $RUN"
