// The printf family and the other output functions.
// exit: 0
// stdout: [  42|42  |00042|+42| 42|-42]
// stdout: [ff|FF|0xff|777|0777|4294967295]
// stdout: [-9223372036854775808|18446744073709551615|-1|255|65535]
// stdout: [abc|  abc|abc  |ab|(null)|A|  B]
// stdout: [3.142|  3.14159|3.1416e+00|+1.50|0.000001]
// stdout: [*|    7|7    |2.50]
// stdout: sprintf=11 'sprintf 123' snprintf=12 'trunc' vsnprintf=8 'v: 1 2 3'
// stdout: vprintf: x=5 y=six
// stdout: putchar+fputc
// stdout: fputs
// stdout: fwrite and write
// stdout: 100%
// stderr: to stderr: 1 two 3.0
// stderr: vfprintf: 9
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void v(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

static void ve(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static int vs(char *buf, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return r;
}

int main(void) {
    printf("[%4d|%-4d|%05d|%+d|% d|%d]\n", 42, 42, 42, 42, 42, -42);
    printf("[%x|%X|%#x|%o|%#o|%u]\n", 255, 255, 255, 511, 511, 4294967295u);
    printf("[%lld|%llu|%ld|%hhu|%hu]\n", (long long)(-9223372036854775807LL - 1), 18446744073709551615ULL, -1L,
           (unsigned char)255, (unsigned short)65535);
    const char *null = NULL;
    printf("[%s|%5s|%-5s|%.2s|%s|%c|%3c]\n", "abc", "abc", "abc", "abc", null, 'A', 'B');
    printf("[%.3f|%9.5f|%.4e|%+.2f|%f]\n", 3.14159265, 3.14159265, 3.14159265, 1.5, 0.000001);
    printf("[%c|%*d|%-*d|%.*f]\n", '*', 5, 7, 5, 7, 2, 2.5);
    char buf[64], small[6];
    int n1 = sprintf(buf, "sprintf %d", 123);
    int n2 = snprintf(small, sizeof small, "trunc%s", "ated!!!");
    char vbuf[16];
    int n3 = vs(vbuf, sizeof vbuf, "v: %d %d %d", 1, 2, 3);
    printf("sprintf=%d '%s' snprintf=%d '%s' vsnprintf=%d '%s'\n", n1, buf, n2, small, n3, vbuf);
    v("vprintf: x=%d y=%s\n", 5, "six");
    putchar('p');
    putchar('u');
    fputs("tchar+", stdout);
    fputc('f', stdout);
    fputs("putc\n", stdout);
    fputs("fputs\n", stdout);
    fwrite("fwrite and ", 1, 11, stdout);
    fflush(stdout);
    write(1, "write\n", 6);
    printf("100%%\n");
    fprintf(stderr, "to stderr: %d %s %.1f\n", 1, "two", 3.0);
    ve("vfprintf: %d\n", 9);
    return 0;
}
