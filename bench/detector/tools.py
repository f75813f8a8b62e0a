#!/usr/bin/env python3
"""Helpers for bench/detector/run.sh (standard library only; loopback only).

  sink PORT OUT MAXSECS          TCP sink for dns2tcpd: accepts one connection, appends
                                 "epoch cumulative_bytes" to OUT after every recv.
  sink-at OUT T                  bytes the sink had received at epoch T (0 if none).
  slow HOST PORT OUT [options]   low-and-slow exfiltration: a random secret, base32, one label
                                 per query under a wildcard, one query every INTERVAL+U(0,JITTER) s.
  benign HOST PORT OUT [options] build-like lookups (registry, source hosting, CDN names with
                                 long hash-like labels), in bursts with pauses.
  sent-at OUT T                  from a slow/benign log: "queries secret_bytes chars" sent at epoch T.
  alerts FILE                    summary of `dnsgate alerts --json` output:
                                 "count first_time first_kind kinds(comma)"; "0 - - -" if none.

Every loop is bounded by a count and a deadline; every socket has a timeout.
"""
import argparse
import base64
import json
import random
import socket
import struct
import sys
import time


# ----------------------------------------------------------------------------- sink
def cmd_sink(a):
    deadline = time.time() + a.maxsecs
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", a.port))
    s.listen(1)
    s.settimeout(max(1.0, deadline - time.time()))
    out = open(a.out, "w")
    try:
        c, _ = s.accept()
    except socket.timeout:
        return
    n = 0
    while time.time() < deadline:
        c.settimeout(max(0.5, min(30.0, deadline - time.time())))
        try:
            d = c.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        n += len(d)
        out.write("%.6f %d\n" % (time.time(), n))
        out.flush()
    out.write("eof %d\n" % n)
    out.flush()


def cmd_sink_at(a):
    best = 0
    try:
        for line in open(a.out):
            f = line.split()
            if len(f) == 2 and f[0] != "eof" and float(f[0]) <= a.t:
                best = int(f[1])
    except FileNotFoundError:
        pass
    print(best)


# ----------------------------------------------------------------------------- DNS client
TYPES = {"A": 1, "AAAA": 28, "TXT": 16, "HTTPS": 65}


def query_packet(qid, name, qtype):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        b = label.encode()
        assert 0 < len(b) < 64, name
        q += bytes([len(b)]) + b
    return q + b"\x00" + struct.pack(">HH", TYPES[qtype], 1)


RCODES = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}


def ask(sock, addr, qid, name, qtype, timeout):
    """One query, one answer (or 'timeout'); never retries, so each name is sent exactly once."""
    sock.settimeout(timeout)
    sock.sendto(query_packet(qid, name, qtype), addr)
    end = time.time() + timeout
    for _ in range(8):  # skip stray answers to earlier ids, bounded
        try:
            d, _ = sock.recvfrom(4096)
        except socket.timeout:
            return "timeout"
        if len(d) >= 4 and struct.unpack(">H", d[:2])[0] == qid:
            return RCODES.get(d[3] & 0x0F, str(d[3] & 0x0F))
        if time.time() >= end:
            break
    return "timeout"


def open_client(a, columns):
    """A UDP socket on loopback for queries to a.host:a.port, the run's start and deadline, and the
    sent-log a.out opened with its header line (columns after t_send)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    start = time.time()
    out = open(a.out, "w")
    out.write("# t_send\t%s\n" % "\t".join(columns))
    return sock, (a.host, a.port), start, start + a.max_seconds, out


def cmd_slow(a):
    rng = random.Random(a.seed)
    secret = bytes(rng.getrandbits(8) for _ in range(a.secret_bytes))
    text = base64.b32encode(secret).decode().rstrip("=").lower()
    chunks = [text[i:i + a.chunk] for i in range(0, len(text), a.chunk)]
    sock, addr, start, deadline, out = open_client(a, ["seq", "secret_bytes_cum", "chars_cum", "rcode", "qname"])
    sent = 0
    for i, chunk in enumerate(chunks):
        if time.time() > deadline:
            break
        name = "%s.%s" % (chunk, a.zone)
        t = time.time()
        rc = ask(sock, addr, (i + 1) & 0xFFFF, name, "A", 2.0)
        sent += len(chunk)
        out.write("%.6f\t%d\t%d\t%d\t%s\t%s\n" % (t, i + 1, min(a.secret_bytes, sent * 5 // 8), sent, rc, name))
        out.flush()
        if i + 1 < len(chunks):
            pause = a.interval + rng.uniform(0, a.jitter)
            time.sleep(max(0.0, min(pause, deadline - time.time())))
    print("slow: %d of %d queries, %d secret bytes, %.1f s" % (i + 1, len(chunks), min(a.secret_bytes, sent * 5 // 8), time.time() - start))


def benign_plan(rng, total):
    """Names a CI build resolves, with the repetition real builds have. Reserved names only."""
    hexs = lambda n: "".join(rng.choice("0123456789abcdef") for _ in range(n))
    alnum = lambda n: "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))
    digits = lambda n: "".join(rng.choice("0123456789") for _ in range(n))
    package = ["registry.example.org", "files.example.org", "index.example.org"] + \
              ["mirror-%02d.example.org" % i for i in range(1, 5)]
    source = ["codeload.example.com", "api.git.example.com", "raw.git.example.com",
              "objects.git.example.com", "uploads.git.example.com"]
    cdn_ids = ["d%s.cdn.example.net" % alnum(13) for _ in range(8)]                # distribution ids
    buckets = ["%s.r2.example.net" % hexs(32) for _ in range(3)]                   # storage account ids
    images = ["%s.dkr.registry.example.com" % digits(12) for _ in range(2)]        # image registry ids
    lbs = ["k8s-ingress-%s-%s.lb.example.net" % (hexs(10), digits(10)) for _ in range(2)]
    ingest = ["o%s.ingest.example.net" % digits(7)]
    fixed = package + source + cdn_ids + buckets + images + lbs + ingest
    blobs = ["%s.objects.example-cdn.test" % hexs(40) for _ in range(max(10, total // 4))]  # content-addressed
    plan = []
    # checkout, then dependency resolution, downloads, image pulls, tests, upload: bursts with pauses
    stages = [(source, 6), (package, 10), (None, 0), (images + buckets + lbs, 8), (fixed, 6), (source[-1:] + ingest, 2)]
    bi, count = 0, 0
    for _ in range(1000):  # bounded; ends when the plan holds `total` queries
        if count >= total:
            break
        for hosts, n in stages:
            if hosts is None:  # parallel downloads: a burst of fresh blobs, A and AAAA each, between registry hits
                burst = []
                for _ in range(rng.randint(8, 16)):
                    if bi < len(blobs):
                        burst += [(blobs[bi], "A"), (blobs[bi], "AAAA")]; bi += 1
                    burst.append((rng.choice(package + cdn_ids), rng.choice(["A", "AAAA"])))
            else:
                burst = []
                for _ in range(rng.randint(max(1, n // 2), n)):
                    h = rng.choice(hosts)
                    burst += [(h, "A"), (h, "AAAA")]
            plan.append(burst); count += len(burst)
            if count >= total:
                break
    flat, out = 0, []
    for b in plan:
        if flat >= total:
            break
        out.append(b[:total - flat]); flat += len(out[-1])
    return out


def cmd_benign(a):
    rng = random.Random(a.seed)
    plan = benign_plan(rng, a.queries)
    sock, addr, start, deadline, out = open_client(a, ["seq", "secret_bytes_cum", "chars_cum", "rcode", "qname", "qtype"])
    n, rcodes = 0, {}
    for burst in plan:
        if time.time() > deadline:
            break
        for name, qtype in burst:
            n += 1
            t = time.time()
            rc = ask(sock, addr, n & 0xFFFF, name, qtype, 2.0)
            rcodes[rc] = rcodes.get(rc, 0) + 1
            out.write("%.6f\t%d\t0\t0\t%s\t%s\t%s\n" % (t, n, rc, name, qtype))
            time.sleep(rng.uniform(0.002, 0.02))
        out.flush()
        time.sleep(min(a.max_pause, rng.expovariate(1.0 / a.mean_pause)))
    names = set()
    for line in open(a.out):
        if not line.startswith("#"):
            names.add(line.split("\t")[5])
    print("benign: %d queries, %d distinct names, %.1f s, rcodes %s" % (n, len(names), time.time() - start,
                                                                        " ".join("%s=%d" % kv for kv in sorted(rcodes.items()))))


def cmd_sent_at(a):
    q = b = c = 0
    for line in open(a.out):
        if line.startswith("#"):
            continue
        f = line.split("\t")
        if float(f[0]) <= a.t:
            q, b, c = int(f[1]), int(f[2]), int(f[3])
    print(q, b, c)


def cmd_alerts(a):
    alerts = []
    for line in open(a.file):
        line = line.strip()
        if line.startswith("{"):
            alerts.append(json.loads(line))
    if not alerts:
        print("0 - - -")
        return
    alerts.sort(key=lambda x: x["firstTime"])
    kinds = []
    for x in alerts:
        k = "%s@%s" % (x["kind"], x["registeredDomain"].rstrip(".")) if a.with_domain else x["kind"]
        if k not in kinds:
            kinds.append(k)
    print(len(alerts), "%.6f" % alerts[0]["firstTime"], alerts[0]["kind"], ",".join(kinds))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sink"); s.add_argument("port", type=int); s.add_argument("out"); s.add_argument("maxsecs", type=float)
    s = sub.add_parser("sink-at"); s.add_argument("out"); s.add_argument("t", type=float)
    for name in ("slow", "benign"):
        s = sub.add_parser(name)
        s.add_argument("host"); s.add_argument("port", type=int); s.add_argument("out")
        s.add_argument("--seed", type=int, default=1)
        s.add_argument("--max-seconds", type=float, default=600)
    s = sub.choices["slow"]
    s.add_argument("--zone", default="cdn.example.net")
    s.add_argument("--secret-bytes", type=int, default=2048)
    s.add_argument("--chunk", type=int, default=52, help="base32 characters per query (one label, <= 63)")
    s.add_argument("--interval", type=float, default=2.0)
    s.add_argument("--jitter", type=float, default=1.0)
    s = sub.choices["benign"]
    s.add_argument("--queries", type=int, default=500)
    s.add_argument("--mean-pause", type=float, default=1.0)
    s.add_argument("--max-pause", type=float, default=4.0)
    s = sub.add_parser("sent-at"); s.add_argument("out"); s.add_argument("t", type=float)
    s = sub.add_parser("alerts"); s.add_argument("file"); s.add_argument("--with-domain", action="store_true")
    a = p.parse_args()
    if a.cmd == "slow" and not 0 < a.chunk < 64:
        p.error("--chunk must be 1..63")
    {"sink": cmd_sink, "sink-at": cmd_sink_at, "slow": cmd_slow, "benign": cmd_benign,
     "sent-at": cmd_sent_at, "alerts": cmd_alerts}[a.cmd](a)


if __name__ == "__main__":
    main()
