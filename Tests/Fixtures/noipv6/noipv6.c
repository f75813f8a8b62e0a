/* A kernel without IPv6, for one process: LD_PRELOADed into dnsgate, socket() refuses AF_INET6 with
 * EAFNOSUPPORT, as on a host booted with ipv6.disable=1, so a test can start dnsgate there without
 * such a host. Every other family reaches the real socket(). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/socket.h>

int socket(int domain, int type, int protocol) {
    static int (*real_socket)(int, int, int);
    if (domain == AF_INET6) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    if (!real_socket) real_socket = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
    return real_socket(domain, type, protocol);
}
