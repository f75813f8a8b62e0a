/*
 * nullresp: the floor for dnsgate's benchmark.  Answers every well-formed UDP
 * query with NXDOMAIN (header + question echoed, no records), moving packets
 * in recvmmsg/sendmmsg batches.  No policy, no cache, no forwarding: whatever
 * a real server costs above this is its own work.
 *
 *   nullresp [-a 127.0.0.1] [-p 5451] [-t THREADS]
 *
 * Loopback addresses only.  One SO_REUSEPORT socket per thread.  Stops on
 * SIGTERM/SIGINT (default action).  Build: make -C bench/nullresp
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define BUFSZ 1500

static struct sockaddr_in g_sa;

/* Rewrite a query in place into its NXDOMAIN reply; 0 = drop it. */
static size_t reply(unsigned char *p, size_t n)
{
    if (n < 12 || (p[2] & 0x80) || p[4] != 0 || p[5] != 1)
        return 0;                      /* short, a response, or QDCOUNT != 1 */
    size_t i = 12;
    while (i < n && p[i] != 0) {
        if (p[i] & 0xC0)
            return 0;                  /* no compression in a query name */
        i += 1u + p[i];
    }
    if (i + 5 > n)
        return 0;
    p[2] = 0x80 | (p[2] & 0x79);       /* QR, keep opcode + RD */
    p[3] = 0x80 | 3;                   /* RA, NXDOMAIN */
    memset(p + 6, 0, 6);               /* AN = NS = AR = 0 (drops OPT too) */
    return i + 5;
}

static void *serve(void *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_DGRAM, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&g_sa, sizeof g_sa) < 0) {
        perror("nullresp: bind");
        exit(1);
    }
    static __thread unsigned char buf[BATCH][BUFSZ];
    static __thread struct sockaddr_in from[BATCH];
    static __thread struct iovec iv[BATCH], ov[BATCH];
    static __thread struct mmsghdr in[BATCH], out[BATCH];
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iv[i] = (struct iovec){ buf[i], BUFSZ };
            in[i].msg_hdr = (struct msghdr){ .msg_name = &from[i], .msg_namelen = sizeof from[i],
                                             .msg_iov = &iv[i], .msg_iovlen = 1 };
        }
        int n = recvmmsg(fd, in, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("nullresp: recvmmsg");
            exit(1);
        }
        int m = 0;
        for (int i = 0; i < n; i++) {
            size_t len = reply(buf[i], in[i].msg_len);
            if (!len)
                continue;
            ov[m] = (struct iovec){ buf[i], len };
            out[m].msg_hdr = (struct msghdr){ .msg_name = &from[i], .msg_namelen = in[i].msg_hdr.msg_namelen,
                                              .msg_iov = &ov[m], .msg_iovlen = 1 };
            m++;
        }
        for (int off = 0; off < m;) {
            int s = sendmmsg(fd, out + off, (unsigned)(m - off), 0);
            off += s > 0 ? s : 1;      /* on error drop that reply, go on */
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    int port = 5451, threads = 1, opt;
    while ((opt = getopt(argc, argv, "a:p:t:")) != -1) {
        if (opt == 'a') addr = optarg;
        else if (opt == 'p') port = atoi(optarg);
        else if (opt == 't') threads = atoi(optarg);
        else { fprintf(stderr, "usage: nullresp [-a ADDR] [-p PORT] [-t THREADS]\n"); return 2; }
    }
    g_sa.sin_family = AF_INET;
    g_sa.sin_port = htons((unsigned short)port);
    if (strncmp(addr, "127.", 4) != 0 || inet_pton(AF_INET, addr, &g_sa.sin_addr) != 1 ||
        port < 1 || port > 65535 || threads < 1 || threads > 64) {
        fprintf(stderr, "nullresp: need a 127.x address, a port and 1..64 threads\n");
        return 2;
    }
    pthread_t t[64];
    for (int i = 1; i < threads; i++)
        pthread_create(&t[i], NULL, serve, NULL);
    fprintf(stderr, "nullresp: %s:%d threads=%d\n", addr, port, threads);
    serve(NULL);
    return 0;
}
