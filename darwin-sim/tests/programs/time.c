// Sleeping and clocks: time moves forward across usleep and nanosleep.
// exit: 0
// stdout: slept: monotonic advanced=1 realtime sane=1 time sane=1 pid>0=1
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    struct timespec t0, t1, real;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    usleep(2000);
    struct timespec nap = {0, 3000000};
    nanosleep(&nap, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    clock_gettime(CLOCK_REALTIME, &real);
    long long ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    time_t now = time(NULL);
    printf("slept: monotonic advanced=%d realtime sane=%d time sane=%d pid>0=%d\n", ns >= 5000000,
           real.tv_sec > 1600000000, now > 1600000000 && now - real.tv_sec < 5, getpid() > 0);
    return 0;
}
