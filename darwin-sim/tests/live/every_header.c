/* Includes every header of the sim SDK and calls every function it declares. */
#include <assert.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static void say(const char *f, ...) {
    va_list ap;
    char b[8];
    va_start(ap, f);
    vprintf(f, ap);
    va_end(ap);
    va_start(ap, f);
    vfprintf(stderr, f, ap);
    va_end(ap);
    va_start(ap, f);
    vsnprintf(b, sizeof b, f, ap);
    va_end(ap);
}

int main(int argc, char **argv) {
    char buf[64];
    struct timespec ts = {0, 1};
    int64_t big = INT64_MAX;
    bool yes = true;
    uint8_t small = UINT8_MAX;
    double eps = DBL_EPSILON;
    assert(argc > 0);
    printf("%d %s\n", argc, argv[0]);
    fprintf(stdout, "x");
    fprintf(stderr, "y%d", 1);
    sprintf(buf, "%d", 1);
    snprintf(buf, 4, "%d", INT_MAX);
    say("%d", 3);
    puts("p");
    putchar('c');
    fputs("s", stderr);
    fputc('c', stdout);
    fwrite(buf, 1, 1, stdout);
    fflush(stdout);
    write(1, "w", 1);
    char *p = malloc(10);
    p = realloc(p, 20);
    free(p);
    p = calloc(2, 3);
    free(p);
    memcpy(buf, "ab", 2);
    memmove(buf + 1, buf, 2);
    memset(buf, 0, 3);
    strcpy(buf, "abc");
    int n = memcmp(buf, "a", 1) + (int)strlen(buf) + strcmp(buf, "x") + strncmp(buf, "y", 1);
    bzero(buf, 4);
    char pattern[16] = {1};
    memset_pattern16(buf, pattern, 32);
    double d = sqrt(2) + sin(1) + cos(1) + tan(1) + atan2(1, 2) + pow(2, 3) + exp(1) + exp2(1) + log(2) +
               ldexp(1, 2) + floor(1.5) + ceil(1.5) + fabs(-1.0) + fmod(5, 3);
    usleep(1);
    nanosleep(&ts, NULL);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    time(NULL);
    if (getpid() == 0) {
        abort();
        _exit(1);
    }
    ssize_t s = 0;
    off_t o = 0;
    pid_t pid = 0;
    (void)s, (void)o, (void)pid, (void)big, (void)yes, (void)small, (void)d, (void)eps, (void)n;
    exit(abs(atoi("0")));
}
