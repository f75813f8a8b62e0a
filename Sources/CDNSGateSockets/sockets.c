#define _GNU_SOURCE
#include "CDNSGateSockets.h"
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>

_Static_assert(sizeof(dnsgate_mmsghdr) == sizeof(struct mmsghdr), "dnsgate_mmsghdr must match struct mmsghdr");
_Static_assert(offsetof(dnsgate_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len), "msg_len offset");

int dnsgate_recvmmsg(int fd, dnsgate_mmsghdr *vec, unsigned int vlen, int wait) {
    return recvmmsg(fd, (struct mmsghdr *)vec, vlen, wait ? MSG_WAITFORONE : MSG_DONTWAIT, NULL);
}

int dnsgate_sendmmsg(int fd, dnsgate_mmsghdr *vec, unsigned int vlen) {
    return sendmmsg(fd, (struct mmsghdr *)vec, vlen, 0);
}

_Static_assert(CMSG_SPACE(sizeof(struct in6_pktinfo)) <= DNSGATE_PKTINFO_SPACE, "pktinfo room");

int dnsgate_enable_pktinfo(int fd, int family) {
    int one = 1;
    if (family == AF_INET6) return setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
    return setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
}

void dnsgate_pktinfo_read(const struct msghdr *msg, dnsgate_local *out) {
    memset(out, 0, sizeof *out);
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c != NULL; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            out->family = AF_INET;
            memcpy(out->addr, &pi.ipi_addr, 4);   // the destination the client used
            return;
        }
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            out->family = AF_INET6;
            memcpy(out->addr, &pi.ipi6_addr, 16);
            return;
        }
    }
}

/// Puts one control message of `len` bytes as the message's only control data.
static void put_cmsg(struct msghdr *msg, void *buffer, int level, int type, const void *data, size_t len) {
    msg->msg_control = buffer;
    msg->msg_controllen = CMSG_SPACE(len);
    struct cmsghdr *c = CMSG_FIRSTHDR(msg);
    c->cmsg_level = level;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN(len);
    memcpy(CMSG_DATA(c), data, len);
}

void dnsgate_pktinfo_write(struct msghdr *msg, void *buffer, const dnsgate_local *local) {
    if (local == NULL || local->family == 0) {
        msg->msg_control = NULL;
        msg->msg_controllen = 0;
        return;
    }
    memset(buffer, 0, DNSGATE_PKTINFO_SPACE);
    // Interface 0 in both families, as unbound and Knot send: the route picks it, where pinning the
    // one the query came in on would bypass the routing table (a multi-homed host's asymmetric
    // routes). A link-local client's address carries its scope, which picks the interface then.
    if (local->family == AF_INET) {
        struct in_pktinfo pi;
        memset(&pi, 0, sizeof pi);
        memcpy(&pi.ipi_spec_dst, local->addr, 4);   // the source address of the reply
        put_cmsg(msg, buffer, IPPROTO_IP, IP_PKTINFO, &pi, sizeof pi);
    } else {
        struct in6_pktinfo pi;
        memset(&pi, 0, sizeof pi);
        memcpy(&pi.ipi6_addr, local->addr, 16);
        put_cmsg(msg, buffer, IPPROTO_IPV6, IPV6_PKTINFO, &pi, sizeof pi);
    }
}

int dnsgate_never_fragment(int fd) {
    int probe = IP_PMTUDISC_PROBE;
    return setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &probe, sizeof probe);
}

long dnsgate_send_fragmentable(int fd, const struct msghdr *msg) {
    int want = IP_PMTUDISC_WANT;
    if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &want, sizeof want) != 0) return -1;
    long sent = sendmsg(fd, msg, 0);
    int saved = errno;
    dnsgate_never_fragment(fd);
    errno = saved;
    return sent;
}
