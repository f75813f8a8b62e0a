#ifndef CDNSGATE_SOCKETS_H
#define CDNSGATE_SOCKETS_H

#include <sys/socket.h>
#include <time.h>

// recvmmsg/sendmmsg and struct mmsghdr are declared only under _GNU_SOURCE, which Swift's Glibc
// module is built without. This struct has mmsghdr's layout (checked in the .c file, which is
// compiled with _GNU_SOURCE) so Swift can build the vectors itself.
typedef struct {
    struct msghdr msg_hdr;
    unsigned int msg_len;
} dnsgate_mmsghdr;

/// Waits for the first datagram (or the socket's SO_RCVTIMEO), then takes whatever else is queued,
/// up to `vlen`, without waiting again (MSG_WAITFORONE). With `wait` 0 it does not wait for the
/// first one either: -1 with EAGAIN when nothing is queued.
int dnsgate_recvmmsg(int fd, dnsgate_mmsghdr *vec, unsigned int vlen, int wait);

/// Sends up to `vlen` datagrams in one call; returns how many went out, or -1 with errno.
int dnsgate_sendmmsg(int fd, dnsgate_mmsghdr *vec, unsigned int vlen);

#endif
