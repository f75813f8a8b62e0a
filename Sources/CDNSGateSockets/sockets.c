#define _GNU_SOURCE
#include "CDNSGateSockets.h"
#include <stddef.h>

_Static_assert(sizeof(dnsgate_mmsghdr) == sizeof(struct mmsghdr), "dnsgate_mmsghdr must match struct mmsghdr");
_Static_assert(offsetof(dnsgate_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len), "msg_len offset");

int dnsgate_recvmmsg(int fd, dnsgate_mmsghdr *vec, unsigned int vlen, int wait) {
    return recvmmsg(fd, (struct mmsghdr *)vec, vlen, wait ? MSG_WAITFORONE : MSG_DONTWAIT, NULL);
}

int dnsgate_sendmmsg(int fd, dnsgate_mmsghdr *vec, unsigned int vlen) {
    return sendmmsg(fd, (struct mmsghdr *)vec, vlen, 0);
}
