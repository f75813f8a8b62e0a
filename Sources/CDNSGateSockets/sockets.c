#define _GNU_SOURCE
#include "CDNSGateSockets.h"
#include <stddef.h>
#include <sys/epoll.h>

_Static_assert(sizeof(dnsgate_mmsghdr) == sizeof(struct mmsghdr), "dnsgate_mmsghdr must match struct mmsghdr");
_Static_assert(offsetof(dnsgate_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len), "msg_len offset");

int dnsgate_recvmmsg(int fd, dnsgate_mmsghdr *vec, unsigned int vlen, int wait) {
    return recvmmsg(fd, (struct mmsghdr *)vec, vlen, wait ? MSG_WAITFORONE : MSG_DONTWAIT, NULL);
}

int dnsgate_sendmmsg(int fd, dnsgate_mmsghdr *vec, unsigned int vlen) {
    return sendmmsg(fd, (struct mmsghdr *)vec, vlen, 0);
}

int dnsgate_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int dnsgate_epoll_add(int epfd, int fd, unsigned int tag) {
    struct epoll_event e = { .events = EPOLLIN, .data.u32 = tag };
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e);
}

int dnsgate_epoll_wait(int epfd, unsigned int *tags, int max, int timeout_ms) {
    struct epoll_event events[64];
    if (max > 64) max = 64;
    int n = epoll_wait(epfd, events, max, timeout_ms);
    for (int i = 0; i < n; i++) tags[i] = events[i].data.u32;
    return n;
}
