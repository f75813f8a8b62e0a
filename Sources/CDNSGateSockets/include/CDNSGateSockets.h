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

/// The local address a datagram arrived on, from IP_PKTINFO / IPV6_PKTINFO: a socket bound to a
/// wildcard address must answer from it, or the client drops the reply (it came from elsewhere).
/// `family` 0: none known (the reply leaves as the kernel routes it).
typedef struct {
    int family;
    unsigned char addr[16];
} dnsgate_local;

/// Room for one pktinfo control message of either family.
#define DNSGATE_PKTINFO_SPACE 64

/// Asks the kernel for each datagram's local address (IP_PKTINFO, or IPV6_RECVPKTINFO on an IPv6
/// socket, which is IPv6-only). 0, or -1 with errno.
int dnsgate_enable_pktinfo(int fd, int family);

/// Reads the local address out of a received message's control data; family 0 when there is none.
void dnsgate_pktinfo_read(const struct msghdr *msg, dnsgate_local *out);

/// Points `msg` at `buffer` (DNSGATE_PKTINFO_SPACE octets) holding a control message that sends
/// from `local`; with family 0 it clears the control data instead.
void dnsgate_pktinfo_write(struct msghdr *msg, void *buffer, const dnsgate_local *local);

/// Sets the Don't Fragment bit on every datagram an IPv4 socket sends and ignores path MTU
/// reports (IP_PMTUDISC_PROBE): replies are never fragmented (RFC 9715), a forged "fragmentation
/// needed" cannot make them so, and the kernel gives an unfragmentable datagram IP ID 0 instead of
/// hashing one for each (about 3 % of a denied name's CPU). A datagram larger than the interface
/// MTU then fails with EMSGSIZE; `dnsgate_send_fragmentable` sends it. 0, or -1 with errno.
int dnsgate_never_fragment(int fd);

/// Sends one datagram that failed with EMSGSIZE on a `dnsgate_never_fragment` socket, with
/// fragmentation allowed for that send (the socket's setting is restored after it). Returns what
/// sendmsg returned. Another thread sending on the socket meanwhile sends as this one does.
long dnsgate_send_fragmentable(int fd, const struct msghdr *msg);

#endif
