#include <stdio.h>

int main(void) {
    char buf[48];
    int n = snprintf(buf, sizeof buf, "%s:%d:%x", "file.c", 42, 0xbeef);
    fprintf(stdout, "to stdout: %s (%d)\n", buf, n);
    fprintf(stderr, "to stderr: %s\n", "warning");
    sprintf(buf, "%+d|% d|%-6s|%6.2s|", 5, 3, "ab", "xyz");
    fputs(buf, stdout);
    fputc('\n', stdout);
    fprintf(stderr, "%c%c\n", 'o', 'k');
    return 2;
}
