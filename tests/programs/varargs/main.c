#include <stdarg.h>
#include <stdio.h>

int sum_ints(int count, ...) {
    va_list ap;
    va_start(ap, count);
    int s = 0;
    for (int i = 0; i < count; i++) {
        s += va_arg(ap, int);
    }
    va_end(ap);
    return s;
}

void logf_(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("log: ");
    vprintf(fmt, ap);
    va_end(ap);
}

int format(char *buf, unsigned long size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

int main(void) {
    printf("%d %d\n", sum_ints(3, 1, 2, 3), sum_ints(6, 10, 20, 30, 40, 50, 60));
    logf_("%s=%d, %c%c, %5.1f|%-4d|%04x\n", "x", 42, 'o', 'k', 3.14159, 7, 255);
    char buf[32];
    int n = format(buf, sizeof buf, "%ld-%lu-%s", -5L, 123456789UL, "end");
    printf("%s (%d)\n", buf, n);
    return 0;
}
