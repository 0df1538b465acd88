/* sim SDK: the part of Darwin's <time.h> that darwin-sim implements. Prototype-only. */
#ifndef _SIM_TIME_H_
#define _SIM_TIME_H_

#include <sys/types.h>

struct timespec {
    time_t tv_sec;
    long tv_nsec;
};

/* Darwin's values (<time.h>, macOS 10.12+). */
typedef enum {
    _CLOCK_REALTIME = 0,
    _CLOCK_MONOTONIC_RAW = 4,
    _CLOCK_MONOTONIC = 6,
} clockid_t;
#define CLOCK_REALTIME _CLOCK_REALTIME
#define CLOCK_MONOTONIC_RAW _CLOCK_MONOTONIC_RAW
#define CLOCK_MONOTONIC _CLOCK_MONOTONIC

time_t time(time_t *tloc);
int nanosleep(const struct timespec *rqtp, struct timespec *rmtp);
int clock_gettime(clockid_t clock_id, struct timespec *tp);

#endif
