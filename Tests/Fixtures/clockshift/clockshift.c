/* A test's wall clock: LD_PRELOADed into dnsgate, it adds the seconds written in $CLOCKSHIFT_FILE
 * (read at most every 100 ms) to CLOCK_REALTIME, so a test can step the server's clock as NTP or a
 * VM resync would, without touching the machine's. The monotonic clock is left alone. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long long offset_ns, last_read_ms = -1000000;
static int (*real_clock_gettime)(clockid_t, struct timespec *);

static void read_offset(void) {
    struct timespec m;
    real_clock_gettime(CLOCK_MONOTONIC, &m);
    long long ms = (long long)m.tv_sec * 1000 + m.tv_nsec / 1000000;
    if (ms - last_read_ms < 100) return;
    last_read_ms = ms;
    const char *path = getenv("CLOCKSHIFT_FILE");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) return;
    double s;
    if (fscanf(f, "%lf", &s) == 1) offset_ns = (long long)(s * 1e9);
    fclose(f);
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
    if (!real_clock_gettime) real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
    int r = real_clock_gettime(clock, ts);
    if (r == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)) {
        read_offset();
        long long t = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + offset_ns;
        ts->tv_sec = t / 1000000000LL;
        ts->tv_nsec = t % 1000000000LL;
    }
    return r;
}

int gettimeofday(struct timeval *tv, void *tz) {
    (void)tz;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *t) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (t) *t = ts.tv_sec;
    return ts.tv_sec;
}
