# bench/lib.sh: functions for bench/run.sh (sourced, not run).
#
# Rules kept here: every address is 127.0.0.1; every process we start is
# recorded as "PID STARTTIME" under $RUN/pids/ and is only ever signalled by
# that PID, after checking it is still the process we started; every wait loop
# has a fixed number of iterations.

ADDR=127.0.0.1
CLK_TCK=$(getconf CLK_TCK)

die() { echo "run.sh: error: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ------------------------------------------------------------------ targets
# name -> port offset from BASE_PORT (the upstream is BASE_PORT itself)
port_of() {
    case "$1" in
        upstream) echo "$BASE_PORT" ;;
        nullresp) echo $((BASE_PORT + 1)) ;;
        dnsgate) echo $((BASE_PORT + 2)) ;;
        unbound) echo $((BASE_PORT + 3)) ;;
        dnsmasq) echo $((BASE_PORT + 4)) ;;
        dnsdist) echo $((BASE_PORT + 5)) ;;
        pdns-recursor) echo $((BASE_PORT + 6)) ;;
        kresd) echo $((BASE_PORT + 7)) ;;
        dnsgate-100k) echo $((BASE_PORT + 8)) ;;
        dnsgate-nodetector) echo $((BASE_PORT + 9)) ;;
        *) return 1 ;;
    esac
}
# the executable a target needs (nullresp needs a C compiler; every dnsgate* target runs the built dnsgate)
binary_of() {
    case "$1" in
        nullresp) echo cc ;; dnsgate*) echo "" ;; unbound) echo unbound ;;
        dnsmasq) echo dnsmasq ;; dnsdist) echo dnsdist ;;
        pdns-recursor) echo pdns_recursor ;; kresd) echo kresd ;;
    esac
}

# ------------------------------------------------------------------ processes
start_time() { # PID -> start time in ticks (field 22 of /proc/PID/stat)
    local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }; set -- $s; echo "${20}"
}

# spawn NAME CPU CMD... : CPU "" = not pinned; standard input from $SPAWN_STDIN (default /dev/null);
# output to $RUN/logs/NAME.log. File descriptor 7 is closed in the child: a caller that holds a
# FIFO's writing end there keeps it to itself.
spawn() {
    local name=$1 cpu=$2 pid st i; shift 2
    if [ -n "$cpu" ]; then set -- taskset -c "$cpu" "$@"; fi
    "$@" <"${SPAWN_STDIN:-/dev/null}" >>"$RUN/logs/$name.log" 2>&1 7>&- &
    pid=$!
    for i in 1 2 3 4 5 6 7 8 9 10; do st=$(start_time "$pid") && break; sleep 0.05; done
    echo "$pid ${st:-0}" >>"$RUN/pids/$name"
}

# PIDs recorded for NAME that are still the processes we started
our_pids() {
    local pid st
    [ -f "$RUN/pids/$1" ] || return 0
    while read -r pid st; do
        [ "$(start_time "$pid" 2>/dev/null)" = "$st" ] && echo "$pid"
    done <"$RUN/pids/$1"
}

stop_one() { # NAME: TERM, up to 5 s, then KILL; only the recorded PIDs
    local p i left
    for p in $(our_pids "$1"); do kill -TERM "$p" 2>/dev/null; done
    for i in $(seq 1 50); do
        left=$(our_pids "$1"); [ -z "$left" ] && break; sleep 0.1
    done
    for p in $left; do kill -KILL "$p" 2>/dev/null; done
    rm -f "$RUN/pids/$1"
}

running() { [ -n "$(our_pids "$1")" ]; }

# isolate NAME...: stops (SIGSTOP) every target this run started except NAMEs; resume_all continues
# them. While one target is measured the others must not run on its core: after the flood of
# misses, a peer that could not keep up works through its backlog for seconds, and dnsmasq sometimes
# stays wedged at full CPU, which no wait ends. Stopped, they use no CPU, and their sockets simply
# hold what arrives until they go on. The upstream (nsd) is shared and never stopped.
isolate() { signal_all STOP upstream "$@"; }
resume_all() { signal_all CONT; }

# signal_all SIGNAL [SPARED...]: sends SIGNAL to every process this run started, but those of the
# SPARED names
signal_all() {
    local sig=$1 f name p; shift
    for f in "$RUN"/pids/*; do
        [ -e "$f" ] || continue
        name=$(basename "$f")
        case " $* " in *" $name "*) continue ;; esac
        for p in $(our_pids "$name"); do kill -"$sig" "$p" 2>/dev/null; done
    done
}

stop_everything() {
    local f
    resume_all   # a stopped process would not act on TERM
    for f in "$RUN"/pids/*; do [ -e "$f" ] && stop_one "$(basename "$f")"; done
    return 0
}

port_busy() { # PORT -> 0 if anything listens on it (UDP or TCP), any address
    ss -Hlnut 2>/dev/null | awk -v p=":$1" '{ if (substr($5, length($5) - length(p) + 1) == p) f = 1 } END { exit !f }'
}

cpu_ticks() { # PID... -> "utime+stime utime" summed (threads included)
    local p s t=0 u=0
    for p in "$@"; do
        s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        s=${s##*) }; set -- $s
        t=$((t + ${12} + ${13})); u=$((u + ${12}))
    done
    echo "$t $u"
}

cpu_busy() { # -> "cpu0_busy cpu0_total cpu1_busy cpu1_total" (ticks, from /proc/stat)
    awk '$1=="cpu0"||$1=="cpu1" { printf "%d %d ", $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9 } END { print "" }' /proc/stat
}

# kthread_runtime -> "PID:NAME NS" for each kernel thread (a child of kthreadd, PID 2): nanoseconds on
# a CPU, from /proc/PID/schedstat (exact, where /proc/PID/stat counts clock ticks). Kernel threads share
# the pinned cores: on this VM the memory monitor (kdamond) runs about 1 ms every 512 ms on CPU 0,
# which stalls dnsperf and puts a burst of slow answers into the p99 of every server alike.
kthread_runtime() {
    local d s ns
    for d in /proc/[0-9]*; do
        s=$(cat "$d/stat" 2>/dev/null) || continue
        # shellcheck disable=SC2086
        set -- ${s##*) }   # state ppid ...: the fields after the name, as in cpu_ticks
        [ "$2" = 2 ] || continue
        read -r ns _ <"$d/schedstat" 2>/dev/null || continue
        s=${s%%) *}
        echo "${d#/proc/}:${s#*(} $ns"
    done
}

# kthreads_since FILE SECONDS: the five kernel threads that ran the most since kthread_runtime wrote
# FILE, as "name 1.23 s (0.4 %)" of the SECONDS the run took.
kthreads_since() {
    kthread_runtime | awk -v secs="$2" '
        { split($1, k, ":"); pid = k[1]; n = substr($1, length(pid) + 2) }
        FNR == NR { before[pid] = $2; next }
        # A kworker names its current work after a dash, so threads are matched by PID.
        { d = ($2 - before[pid]) / 1e9; if (n ~ /^kworker/) sub(/-.*$/, "", n); if (d >= 0.001) used[n] += d }
        END { for (n in used) printf "%s %.3f s (%.2f %%)\n", n, used[n], 100 * used[n] / secs }' "$1" - |
        sort -k2 -rn | head -5 | paste -sd, - | sed 's/,/, /g'
}

# settle_cpus [MAX_SECONDS]: 0 once both CPUs were under 10 % busy for 0.2 s; 1 after MAX_SECONDS (5).
# A peer that could not keep up with a flood of misses keeps working through its backlog after
# dnsperf stops, on the server core, and its retries keep nsd busy on the client core: either
# would run during the next target's probe.
settle_cpus() {
    local i
    for i in $(seq 1 $(( ${1:-5} * 5 ))); do
        # shellcheck disable=SC2046
        set -- $(cpu_busy) $(sleep 0.2; cpu_busy)
        [ $(( ($5 - $1) * 10 )) -lt $(( $6 - $2 )) ] && [ $(( ($7 - $3) * 10 )) -lt $(( $8 - $4 )) ] && return 0
    done
    return 1
}

# ------------------------------------------------------------------ DNS
dig_q() { # PORT NAME -> "STATUS A-RECORDS"; 1 try, 1 s
    local out st
    out=$(dig +tries=1 +time=1 +noedns -p "$1" "@$ADDR" "$2" A 2>/dev/null) || { echo TIMEOUT; return 0; }
    printf '%s\n' "$out" >"$RUN/last-answer.txt"   # shown in full when a check fails
    st=$(printf '%s\n' "$out" | sed -n 's/.*status: \([A-Z]*\),.*/\1/p' | head -1)
    printf '%s %s\n' "${st:-NOREPLY}" "$(printf '%s\n' "$out" | awk '!/^;/ && $4 == "A" { printf "%s ", $5 }')"
}

dig_q_settled() { # PORT NAME PATTERN: dig_q, asked again up to twice (0.3 s apart) while it does not match
    # A peer that has just started may not have its upstream marked up yet; the answer asked again
    # is the one checked. Only for names that must be answered: a denial is never given a retry.
    local got i
    for i in 1 2 3; do
        got=$(dig_q "$1" "$2")
        case "$got" in $3) break ;; esac
        [ "$i" -lt 3 ] && sleep 0.3
    done
    printf '%s\n' "$got"
}

wait_answer() { # PORT NAME PATTERN TRIES: until dig_q matches (0.25 s apart)
    local i
    for i in $(seq 1 "$4"); do
        case "$(dig_q "$1" "$2")" in $3) return 0 ;; esac
        sleep 0.25
    done
    return 1
}

# ------------------------------------------------------------------ upstream (nsd)
start_upstream() { # CPU
    local d=$RUN/upstream up
    up=$(port_of upstream)
    mkdir -p "$d"
    cp "$BENCH"/upstream/*.zone "$d/"
    cat >"$d/nsd.conf" <<EOF
server:
    ip-address: $ADDR@$up
    do-ip6: no
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "$d"
    pidfile: "$d/nsd.pid"
    database: ""
    zonelistfile: "$d/zone.list"
    xfrdfile: "$d/xfrd.state"
    xfrdir: "$d"
    logfile: "$RUN/logs/nsd-own.log"
    hide-version: yes
    minimal-responses: yes
    # all benchmark traffic comes from one /24: rate limiting would throttle it
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    receive-buffer-size: 4194304
    send-buffer-size: 4194304
remote-control:
    control-enable: yes
    control-interface: "$d/nsd.ctl"
zone:
    name: allowed.test
    zonefile: "allowed.test.zone"
    zonestats: "allowed"
zone:
    name: denied.test
    zonefile: "denied.test.zone"
    zonestats: "denied"
EOF
    spawn upstream "$1" nsd -d -c "$d/nsd.conf"
    wait_answer "$up" www.allowed.test "NOERROR 192.0.2.1 " 40 || die "nsd did not come up on $ADDR:$up (see $RUN/logs/)"
}

upstream_counts() { # -> "total allowed denied" queries the upstream has received
    nsd-control -c "$RUN/upstream/nsd.conf" stats_noreset 2>/dev/null | awk -F= '
        $1 == "num.queries" { t = $2 } $1 == "allowed.num.queries" { a = $2 } $1 == "denied.num.queries" { d = $2 }
        END { printf "%d %d %d\n", t, a, d }'
}

# ------------------------------------------------------------------ peer configs
# Every peer gets the same policy: the suffixes of policy/allowlist.txt
# ("*.x" and "x" both become "x and below", what all peers can express),
# forwarded to the upstream; everything else NXDOMAIN, never forwarded.
suffixes() {
    sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]].*//' -e 's/^\*\.//' "$BENCH/policy/allowlist.txt" | awk 'NF && !seen[$0]++'
}

configure() { # NAME -> files under $RUN/conf/NAME/
    local name=$1 d=$RUN/conf/$1 port up
    port=$(port_of "$name"); up=$(port_of upstream)
    mkdir -p "$d"
    case "$name" in
    nullresp)
        cc -O2 -pthread -o "$d/nullresp" "$BENCH/nullresp/nullresp.c" || die "cannot compile bench/nullresp/nullresp.c" ;;
    dnsgate) : ;;   # reads policy/allowlist.txt itself
    dnsgate-100k) pad_allowlist "$d/allowlist-100k.txt" ;;
    dnsgate-nodetector)   # the flags below set everything else, as for dnsgate
        printf 'detector:\n  enabled: false\nstate_file: %s/state.json\n' "$d" >"$d/nodetector.yaml" ;;
    unbound)
        printf '.  3600000 NS a.root.invalid.\na.root.invalid. 3600000 A 127.0.0.1\n' >"$d/root.hints"
        { cat <<EOF
server:
    interface: $ADDR@$port
    port: $port
    do-ip6: no
    num-threads: 1
    so-reuseport: yes
    username: ""
    chroot: ""
    directory: "$d"
    pidfile: "$d/unbound.pid"
    use-syslog: no
    logfile: "$RUN/logs/unbound-own.log"
    module-config: "iterator"
    root-hints: "$d/root.hints"
    do-not-query-localhost: no
    qname-minimisation: no
    minimal-responses: yes
    msg-cache-size: 256m
    rrset-cache-size: 512m
    num-queries-per-thread: 4096
    outgoing-range: 8192
    access-control: 127.0.0.0/8 allow
    local-zone: "." always_nxdomain
EOF
          suffixes | awk '{ printf "    local-zone: \"%s.\" transparent\n", $0 }'
          printf 'remote-control:\n    control-enable: no\n'
          suffixes | awk -v u="$ADDR@$up" '{ printf "forward-zone:\n    name: \"%s.\"\n    forward-addr: %s\n", $0, u }'
        } >"$d/unbound.conf" ;;
    dnsmasq)
        { cat <<EOF
listen-address=$ADDR
port=$port
bind-interfaces
no-resolv
no-hosts
no-poll
pid-file=
user=
keep-in-foreground
log-facility=$RUN/logs/dnsmasq-own.log
cache-size=1000000
dns-forward-max=4096
# NXDOMAIN for every name; the server= lines below are more specific and win
address=/#/
EOF
          suffixes | awk -v u="$ADDR#$up" '{ printf "server=/%s/%s\n", $0, u }'
        } >"$d/dnsmasq.conf" ;;
    dnsdist)
        { cat <<EOF
setSecurityPollSuffix("")
setLocal("$ADDR:$port", { reusePort = true })
srv = newServer({ address = "$ADDR:$up", name = "upstream" })
srv:setUp()
allowed = newSuffixMatchNode()
EOF
          suffixes | awk '{ printf "allowed:add(\"%s\")\n", $0 }'
          cat <<'EOF'
addAction(NotRule(SuffixMatchNodeRule(allowed, true)), RCodeAction(DNSRCode.NXDOMAIN))
getPool(""):setCache(newPacketCache(1000000, { maxTTL = 86400, minTTL = 0, numberOfShards = 16 }))
EOF
        } >"$d/dnsdist.conf" ;;
    pdns-recursor)
        printf '.  3600000 NS a.root.invalid.\na.root.invalid. 3600000 A 127.0.0.1\n' >"$d/root.hints"
        suffixes | awk -v u="$ADDR:$up" '{ printf "%s=%s\n", $0, u }' >"$d/forward-zones.txt"
        { echo 'allowed = newDS()'
          suffixes | awk '{ printf "allowed:add(\"%s\")\n", $0 }'
          cat <<'EOF'
function preresolve(dq)
  if allowed:check(dq.qname) then return false end
  dq.rcode = pdns.NXDOMAIN
  return true
end
EOF
        } >"$d/policy.lua"
        cat >"$d/recursor.conf" <<EOF
local-address=$ADDR
local-port=$port
threads=1
pdns-distributes-queries=no
reuseport=yes
daemon=no
socket-dir=$d
hint-file=$d/root.hints
forward-zones-file=$d/forward-zones.txt
lua-dns-script=$d/policy.lua
security-poll-suffix=
dnssec=off
qname-minimization=no
disable-syslog=yes
quiet=yes
webserver=no
max-cache-entries=2000000
max-packetcache-entries=1000000
max-mthreads=4096
EOF
        ;;
    kresd)
        { cat <<EOF
net.ipv6 = false
net.listen('$ADDR', $port, { kind = 'dns' })
modules.unload('priming')
modules.unload('detect_time_skew')
modules.unload('detect_time_jump')
modules.unload('ta_signal_query')
modules.unload('ta_sentinel')
trust_anchors.remove('.')
modules.load('hints > iterate')
hints.root({ ['a.root.invalid.'] = '127.0.0.1' })
cache.open(512 * MB, 'lmdb://$d/cache')
allowed = {
EOF
          suffixes | awk '{ printf "  \"%s\",\n", $0 }'
          cat <<EOF
}
policy.add(policy.suffix(policy.STUB({ '$ADDR@$up' }), policy.todnames(allowed)))
policy.add(policy.all(policy.DENY))
EOF
        } >"$d/kresd.conf" ;;
    esac
}

start_target() { # NAME CPU -> 0 when it answers a denied name with NXDOMAIN
    local name=$1 cpu=$2 d=$RUN/conf/$1 port
    port=$(port_of "$name")
    case "$name" in
    nullresp) spawn "$name" "$cpu" "$d/nullresp" -a "$ADDR" -p "$port" -t 1 ;;
    dnsgate*)
        local allow=$BENCH/policy/allowlist.txt config=--no-config
        [ "$name" = dnsgate-100k ] && allow=$d/allowlist-100k.txt
        [ "$name" = dnsgate-nodetector ] && config="--config=$d/nodetector.yaml"
        # shellcheck disable=SC2086
        spawn "$name" "$cpu" "$DNSGATE_BIN" serve "$config" --listen "$ADDR:$port" \
            --upstream "$ADDR:$(port_of upstream)" --allow "$allow" \
            --sinkhole nxdomain --mode enforce --control "$d/control.sock" \
            --threads "$DNSGATE_THREADS" --query-log none $DNSGATE_ARGS ;;
    unbound) spawn "$name" "$cpu" unbound -d -p -c "$d/unbound.conf" ;;
    dnsmasq) spawn "$name" "$cpu" dnsmasq --conf-file="$d/dnsmasq.conf" ;;
    dnsdist) spawn "$name" "$cpu" dnsdist --supervised --disable-syslog -C "$d/dnsdist.conf" ;;
    pdns-recursor) spawn "$name" "$cpu" pdns_recursor --config-dir="$d" ;;
    kresd) spawn "$name" "$cpu" kresd -n -q -c "$d/kresd.conf" "$d" ;;
    esac
    wait_ready "$name" "$port"
}

# wait_ready NAME PORT -> 0 once NAME answers a denied name with NXDOMAIN on PORT (at most 20 s);
# else its log's tail on stderr and 1
wait_ready() {
    local i
    for i in $(seq 1 80); do
        case "$(dig_q "$2" ready.denied.test)" in NXDOMAIN*) return 0 ;; esac
        running "$1" || break
        sleep 0.25
    done
    tail -n 5 "$RUN/logs/$1.log" >&2
    return 1
}

# pad_allowlist OUT: policy/allowlist.txt padded to 100,000 entries (half exact, half wildcards)
# under filler.test, which no workload name matches
pad_allowlist() {
    { cat "$BENCH/policy/allowlist.txt"
      awk -v n=$((100000 - $(grep -cv '^\s*\(#\|$\)' "$BENCH/policy/allowlist.txt"))) 'BEGIN {
          for (i = 0; i < n; i++) if (i % 2) printf "*.pad%06d.filler.test\n", i; else printf "host%06d.filler.test\n", i }'
    } >"$1"
}

# build_dnsgate REV EXPORT_BASE: a release build of commit REV, exported clean under EXPORT_BASE
# (scratch path .build-bench-rev), or with REV "" of the work tree (.build-bench). Sets DNSGATE_BIN
# and DNSGATE_DESC; the build's output goes to standard output; returns the build's status.
build_dnsgate() {
    local rev src
    if [ -n "$1" ]; then
        rev=$(git -C "$REPO" rev-parse --short "$1^{commit}") || die "no such revision '$1'"
        src=$2/src-$rev
        log "building dnsgate $rev (release, clean export in $src, scratch path .build-bench-rev)"
        rm -rf "$src"; mkdir -p "$src"
        git -C "$REPO" archive "$rev" | tar -x -C "$src" || die "cannot export $rev"
        [ -f "$REPO/Package.resolved" ] && cp "$REPO/Package.resolved" "$src/"
        DNSGATE_BIN="$REPO/.build-bench-rev/release/dnsgate"; DNSGATE_DESC="git $rev (clean export)"
        (cd "$src" && swift build -c release --scratch-path "$REPO/.build-bench-rev" --product dnsgate) 2>&1
    else
        log "building dnsgate from the work tree (release, scratch path .build-bench)"
        DNSGATE_BIN="$REPO/.build-bench/release/dnsgate"
        DNSGATE_DESC="work tree at git $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- Sources Package.swift 2>/dev/null || echo ' + uncommitted edits')"
        (cd "$REPO" && swift build -c release --scratch-path .build-bench --product dnsgate) 2>&1
    fi
}

# ------------------------------------------------------------------ policy check
# verify NAME -> prints ok/FAIL lines, returns the number of failures
verify() {
    local name=$1 port fails=0 tag b a n
    port=$(port_of "$name")
    tag="v$RANDOM$RANDOM"
    check() { # WHAT GOT PATTERN
        case "$2" in
            $3) printf '  ok    %-46s %s\n' "$1" "$2" ;;
            *) printf '  FAIL  %-46s got "%s"\n' "$1" "$2"; fails=$((fails + 1))
               echo "        the last answer dig printed:"; sed 's/^/        | /' "$RUN/last-answer.txt" 2>/dev/null ;;
        esac
    }
    echo "== $name (127.0.0.1:$port)"
    if [ "$name" = nullresp ]; then
        check "anything -> NXDOMAIN (reference, no policy)" "$(dig_q "$port" "www.allowed.test")" "NXDOMAIN*"
        return $fails
    fi
    check "allowed www.allowed.test" "$(dig_q_settled "$port" www.allowed.test "NOERROR 192.0.2.1 ")" "NOERROR 192.0.2.1 "
    check "allowed apex allowed.test" "$(dig_q_settled "$port" allowed.test "NOERROR 192.0.2.1 ")" "NOERROR 192.0.2.1 "
    b=$(upstream_counts)
    check "allowed, uncached $tag.allowed.test" "$(dig_q "$port" "$tag.allowed.test")" "NOERROR 192.0.2.1 "
    a=$(upstream_counts)
    check "  ... was forwarded to the upstream" "$(echo "$b $a" | awk '{ print ($5 > $2) ? "yes" : "no" }')" yes
    b=$a
    dig_q "$port" "$tag.svc150.example" >/dev/null   # deep in the list: forwarded (nsd refuses it)
    a=$(upstream_counts)
    check "  ... and so was $tag.svc150.example" "$(echo "$b $a" | awk '{ print ($4 > $1) ? "yes" : "no" }')" yes
    b=$(upstream_counts)
    for n in www.denied.test denied.test "$tag.denied.test" notallowed.test allowed.test.evil.example \
             xallowed.test x.svc150.example.org svc150.example.com a.svc200.example www.example.com \
             "$tag" a.b.c.d.denied.test; do
        check "denied $n" "$(dig_q "$port" "$n")" "NXDOMAIN*"
    done
    for n in $(seq 1 20); do
        case "$(dig_q "$port" "burst$n-$tag.denied.test")" in
            NXDOMAIN*) ;; *) fails=$((fails + 1)); echo "  FAIL  burst$n-$tag.denied.test not NXDOMAIN" ;;
        esac
    done
    a=$(upstream_counts)
    check "  ... upstream queries during the denied checks" "$(echo "$b $a" | awk '{ print $4 - $1 }')" 0
    return $fails
}

# ------------------------------------------------------------------ queries
# Static: a_denied.txt (20k distinct denied names, looped), b_hot.txt (100 names).
gen_static() { # DIR
    awk 'BEGIN {
        for (i = 0; i < 20000; i++) {
            k = i % 6
            if (k == 0) printf "d%d.denied.test A\n", i
            else if (k == 1) printf "www.site%d.com A\n", i
            else if (k == 2) printf "api%d.tracker%d.net A\n", i, i % 97
            else if (k == 3) printf "x%d.svc%03d.example.org A\n", i, 1 + i % 199
            else if (k == 4) printf "c%d.allowed.test.evil%d.com A\n", i, i % 31
            else printf "exfil-%x.denied.test A\n", (i * 2654435761) % 4294967296
        } }' >"$1/a_denied.txt"
    { for n in allowed.test www.allowed.test api.allowed.test registry.allowed.test git.allowed.test; do echo "$n A"; done
      awk 'BEGIN { for (i = 0; i < 95; i++) printf "hot%02d.allowed.test A\n", i }'; } >"$1/b_hot.txt"
}

# Per round (unique names must never repeat across rounds):
# gen_unique DIR TAG LINES -> c_TAG.txt (85 % hot, 10 % denied, 5 % unique) and d_TAG.txt (all unique)
gen_unique() {
    local q=$1 tag=$2 n=$3
    awk -v n="$n" -v tag="$tag" -v seed="$RANDOM" '
        FILENAME ~ /b_hot/ { hot[nh++] = $1; next }
        { den[nd++] = $1 }
        END {
            srand(seed)
            for (i = 0; i < n; i++) {
                r = rand()
                if (r < 0.85) printf "%s A\n", hot[int(rand() * nh)]
                else if (r < 0.95) printf "%s A\n", den[int(rand() * nd)]
                else printf "u%s-%d.allowed.test A\n", tag, i
            } }' "$q/b_hot.txt" "$q/a_denied.txt" >"$q/c_$tag.txt"
    awk -v n="$n" -v tag="$tag" 'BEGIN { for (i = 0; i < n; i++) printf "m%s-%d.allowed.test A\n", tag, i }' >"$q/d_$tag.txt"
}

# dnsperf report -> "completed lost qps"
perf_numbers() {
    awk '/Queries completed:/ { c = $3 } /Queries lost:/ { l = $3 } /Queries per second:/ { q = $4 }
         END { printf "%d %d %.0f\n", c, l, q }' "$1"
}

# dnsperf -v report -> "p50_ms p99_ms" over answered queries
perf_latency() {
    awk '$1 == ">" { print $NF * 1000 }' "$1" | sort -n | awk '{ v[NR] = $1 }
        END { if (NR == 0) print "- -"; else printf "%.3f %.3f\n", v[int(NR * 0.50) + 1], v[int(NR * 0.99) + 1] }'
}

# ------------------------------------------------------------------ tables
# print_tables OUTDIR: markdown, medians over rounds, from runs.csv + probes.csv
print_tables() {
    local mode; mode=$(sed -n 's/.*mode \([a-z]*\)$/\1/p' "$1/meta.txt" 2>/dev/null | head -1)
    awk -F, -v mode="${mode:-pinned}" '
    function med(s,   a, n, i, j, x) {
        n = split(s, a, " ")
        for (i = 2; i <= n; i++) { x = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function ratio(x, y) { return (x > 0 && y > 0) ? sprintf("%.2f", x / y) : "-" }
    # "r1 / r2 / ...": the ratio of targets x and y in each round of workload wl, from v[round, wl, target]
    function byround(v, n, wl, x, y,   r, s, a1, a2) {
        s = ""
        for (r = 1; r <= n; r++) {
            a1 = r SUBSEP wl SUBSEP x; a2 = r SUBSEP wl SUBSEP y
            if ((a1 in v) && (a2 in v)) s = s (s == "" ? "" : " / ") ratio(v[a1], v[a2])
        }
        return s
    }
    FNR == 1 { f++; if (f == 2) po = ($1 == "round") ? 1 : 0; next }   # probes.csv of older runs has no round column
    f == 1 {  # round,workload,target,completed,lost,qps,server_cpu_s,us_per_query,upstream_q_per_query,cpu0,cpu1,policy[,user_us_per_query]
        k = $2 SUBSEP $3
        if (!(k in qps)) { if (!($2 in seen)) { seen[$2] = 1 }; tl[$2] = tl[$2] " " $3 }
        qps[k] = qps[k] " " $6; us[k] = us[k] " " $8; upq[k] = upq[k] " " $9
        lost[k] += $5; done[k] += $4; pol[k] = $12; nr[k]++
        ur[$1 SUBSEP k] = $8; if ($1 + 0 > maxr) maxr = $1 + 0
        b0[$2] += $10; b1[$2] += $11; fo[$2] += $11 - $6 * $8 / 1e4; nb[$2]++
        if (NF >= 13 && $13 != "") { usr[k] = usr[k] " " $13; sys[k] = sys[k] " " ($8 - $13) }   # runs.csv of older runs has no user column
    }
    f == 2 {  # round,workload,target,rate,achieved_qps,completed,lost,us_per_query,p50_ms,p99_ms,policy,cpu0_busy,cpu1_busy,cpu1_other
        pr = po ? $1 : 1; k = $(1 + po) SUBSEP $(2 + po); prate = $(3 + po)
        # CPU 1 busy with anything but the probed server: another process ran on its core (pinned runs)
        if (po && NF >= 14 && (!($2 in pother) || $14 + 0 > pother[$2])) pother[$2] = $14 + 0
        # A probe during which another process took over 20 % of the server core (a peer still busy
        # with an earlier flood, or wedged by it) says nothing about the probed server: left out.
        if (mode == "pinned" && po && NF >= 14 && $14 + 0 > 20) { pvoid[$2]++; pvt[$2] = pvt[$2] " " $3 " (round " $1 ")"; next }
        pus[k] = pus[k] " " $(7 + po); pach[k] = pach[k] " " $(4 + po)
        if ($(8 + po) != "-") { p50[k] = p50[k] " " $(8 + po); p99[k] = p99[k] " " $(9 + po) }
        pdone[k] += $(5 + po); plostn[k] += $(6 + po)
        pur[pr SUBSEP k] = $(7 + po); if (pr + 0 > pmaxr) pmaxr = pr + 0
    }
    END {
        title["a"] = "(a) denied names: sinkhole, never forwarded"
        title["b"] = "(b) allowed names, cache-hot"
        title["c"] = "(c) CI mix: 85% hot allowed, 10% denied, 5% unique (miss)"
        title["d"] = "(d) every query a miss: unique allowed names, each forwarded"
        split("a b c d", W, " ")
        for (w = 1; w <= 4; w++) {
            wl = W[w]; if (!(wl in seen)) continue
            n = split(tl[wl], T, " ")
            for (i = 1; i <= n; i++) { k = wl SUBSEP T[i]; Q[T[i]] = med(qps[k]); U[T[i]] = med(us[k]); UP[T[i]] = med(upq[k]) }
            # order: dnsgate, peers by CPU per query, nullresp last
            m = 0; if (index(" " tl[wl] " ", " dnsgate ")) O[++m] = "dnsgate"
            if (index(" " tl[wl] " ", " dnsgate-100k ")) O[++m] = "dnsgate-100k"
            if (index(" " tl[wl] " ", " dnsgate-nodetector ")) O[++m] = "dnsgate-nodetector"
            g = m   # dnsgate rows first, then the peers by CPU per query
            for (i = 1; i <= n; i++) if (T[i] !~ /^dnsgate/ && T[i] != "nullresp") O[++m] = T[i]
            for (i = g + 2; i <= m; i++) for (j = i; j > g + 1 && U[O[j - 1]] > U[O[j]]; j--) { x = O[j]; O[j] = O[j - 1]; O[j - 1] = x }
            if (index(" " tl[wl] " ", " nullresp ")) O[++m] = "nullresp"
            best = ""; for (i = 1; i <= m; i++) if (O[i] !~ /^dnsgate/ && O[i] != "nullresp" && U[O[i]] > 0 && (best == "" || U[O[i]] < U[best])) best = O[i]
            bestq = ""; for (i = 1; i <= m; i++) if (O[i] !~ /^dnsgate/ && O[i] != "nullresp" && (bestq == "" || Q[O[i]] > Q[bestq])) bestq = O[i]
            hasg = (index(" " tl[wl] " ", " dnsgate ") > 0)
            ref = hasg ? "dnsgate" : best
            printf "\n### %s\n\n", title[wl]
            printf "| target | QPS | CPU µs/query | CPU vs %s | server CPU %% | lost %% | upstream q/query |", hasg ? "dnsgate" : "best peer"
            if (prate) printf " CPU µs/q @%s qps | p50 / p99 ms @%s qps |", prate, prate
            printf "\n|---|---:|---:|---:|---:|---:|---:|%s\n", prate ? "---:|---:|" : ""
            for (i = 1; i <= m; i++) {
                t = O[i]; k = wl SUBSEP t
                label = t; if (t == "nullresp") label = "nullresp (floor, no policy)"
                if (t == "dnsgate-100k") label = "dnsgate, 100,000-entry allow-list"
                if (t == "dnsgate-nodetector") label = "dnsgate, detector off (not the product)"
                if (pol[k] == "FAIL") label = label " **POLICY FAIL**"
                printf "| %s | %.0f | %.1f | %s | %.0f | %.2f | %.3f |", label, Q[t], U[t], ratio(U[t], U[ref]), Q[t] * U[t] / 1e4,
                    (done[k] + lost[k] > 0) ? 100 * lost[k] / (done[k] + lost[k]) : 0, UP[t]
                if (prate) {
                    pl = (pdone[k] + plostn[k] > 0) ? 100 * plostn[k] / (pdone[k] + plostn[k]) : 0
                    pn = (k in pach && med(pach[k]) < 0.95 * prate) ? sprintf(" (only %.0f qps reached)", med(pach[k])) : ""
                    printf " %s | %s |", (k in pus) ? sprintf("%.1f", med(pus[k])) : "-",
                        (k in p50) ? sprintf("%.3f / %.3f%s%s", med(p50[k]), med(p99[k]), pn, (pl > 0.1) ? sprintf(" (%.1f%% lost)", pl) : "") : "-"
                    if (k in pus) PU[t] = med(pus[k])
                }
                printf "\n"
            }
            if (hasg && best != "")
                printf "\ndnsgate / best peer: CPU per query %s (best %s, %.1f µs), QPS %s (best %s); dnsgate / nullresp floor: CPU %s\n",
                    ratio(U["dnsgate"], U[best]), best, U[best], ratio(Q["dnsgate"], Q[bestq]), bestq, ratio(U["dnsgate"], U["nullresp"])
            else if (!hasg) printf "\ndnsgate: not in this run (row pending).\n"
            # Rounds are interleaved, so the ratio of each round compares runs minutes apart: their spread
            # shows how much of a small difference the noise of the host could explain.
            if (hasg && best != "" && maxr > 1) {
                pr = byround(ur, maxr, wl, "dnsgate", best)
                if (pr != "") printf "\ndnsgate / %s, CPU per query round by round: %s\n", best, pr
            }
            # The same comparison at the fixed rate: best peer by its median CPU per query there.
            pbest = ""; for (i = 1; i <= m; i++) if (O[i] !~ /^dnsgate/ && O[i] != "nullresp" && PU[O[i]] > 0 && (pbest == "" || PU[O[i]] < PU[pbest])) pbest = O[i]
            if (hasg && pbest != "" && PU["dnsgate"] > 0) {
                pr = byround(pur, pmaxr, wl, "dnsgate", pbest)
                printf "\nAt %s qps: dnsgate / best peer CPU per query %s (best %s, %.1f µs)%s\n", prate, ratio(PU["dnsgate"], PU[pbest]), pbest, PU[pbest],
                    (pmaxr > 1 && pr != "") ? "; round by round: " pr : ""
            }
            if (hasg && ("dnsgate-100k" in U) && U["dnsgate-100k"] > 0)
                printf "\ndnsgate with 100,000 allow entries / with 200: CPU per query %s, QPS %s\n", ratio(U["dnsgate-100k"], U["dnsgate"]), ratio(Q["dnsgate-100k"], Q["dnsgate"])
            # What the detector costs, and where dnsgate would stand without it: never the result itself.
            if (hasg && ("dnsgate-nodetector" in U) && U["dnsgate-nodetector"] > 0) {
                printf "\nThe detector: dnsgate with it on, %.2f µs a query, without it %.2f (%+.2f)", U["dnsgate"], U["dnsgate-nodetector"], U["dnsgate"] - U["dnsgate-nodetector"]
                if (best != "") printf "; without it dnsgate / %s: %s", best, ratio(U["dnsgate-nodetector"], U[best])
                if (PU["dnsgate"] > 0 && PU["dnsgate-nodetector"] > 0) printf "; at %s qps %.2f against %.2f (%+.2f)%s", prate, PU["dnsgate"], PU["dnsgate-nodetector"], PU["dnsgate"] - PU["dnsgate-nodetector"], (pbest != "") ? sprintf(", without it / %s %s", pbest, ratio(PU["dnsgate-nodetector"], PU[pbest])) : ""
                printf "\n"
            }
            # Where each server spends its CPU: a gap in user time is the code of the server, a gap in
            # system time is in the kernel, mostly the socket calls.
            s = ""; for (i = 1; i <= m; i++) if ((wl SUBSEP O[i]) in usr) s = s sprintf("%s%s %.2f / %.2f", (s == "") ? "" : ", ", O[i], med(usr[wl SUBSEP O[i]]), med(sys[wl SUBSEP O[i]]))
            if (s != "") printf "\nUser / system CPU µs a query (medians; /proc samples the split at clock ticks, so it is a guide): %s\n", s
            if (mode != "pinned") printf "\nCPU busy during these runs (mean, unpinned): CPU 0 %.0f %%, CPU 1 %.0f %%.\n", b0[wl] / nb[wl], b1[wl] / nb[wl]
            if (mode == "pinned") printf "\nCPU busy during these runs (mean): CPU 0 (dnsperf + nsd) %.0f %%, CPU 1 (server) %.0f %%, of which about %.0f %% was not the server (other load on the machine).\n", b0[wl] / nb[wl], b1[wl] / nb[wl], (fo[wl] > 0) ? fo[wl] / nb[wl] : 0
            # Ticks at 100 Hz over 2-3 s: about 10 points of noise either way, so only a clear excess counts.
            if (mode == "pinned" && (wl in pother)) printf "\nDuring the fixed-rate probes, CPU 1 was at most %.0f %% busy with anything but the probed server%s.\n", (pother[wl] > 0) ? pother[wl] : 0, (pother[wl] > 20) ? " (**probes disturbed**: another process ran on the server core)" : ""
            if (wl in pvoid) printf "%d disturbed probe(s) left out of the medians (another process took over 20 %% of CPU 1):%s.\n", pvoid[wl], pvt[wl]
            if (wl == "a") for (i = 1; i <= m; i++) if (O[i] != "nullresp" && UP[O[i]] > 0) printf "\n**LEAK: %s forwarded denied names (%.3f upstream queries per query)**\n", O[i], UP[O[i]]
            delete O; delete Q; delete U; delete UP; delete PU
        }
        printf "\nMedians over %d round(s). CPU µs/query = utime+stime of the server process from /proc over the run, divided by answered queries; ", nr[k]
        printf "\"CPU vs\" > 1 means more CPU per query than the reference; server CPU %% = QPS x µs/query (100 = one core busy); "
        if (prate) printf "the last two columns come from separate runs at a fixed offered rate (dnsperf -Q, per-query latencies from -v), medians over the probe rounds; "
        if (prate) printf "\"only N qps reached\": with 150 queries in flight the offered rate was not reached (server or client too slow; see cpu0/cpu1 busy in runs.csv)."
        printf "\n"
    }' "$1/runs.csv" "$1/probes.csv"
}
