// Large zero-filled data (beyond the file), the stack protector on a local buffer, and a big stack frame.
// exit: 0
// stdout: bss: zero=1 sum=1999000
// stdout: buffer: copied 63 bytes
// stdout: frame: 524288
#include <stdio.h>
#include <string.h>

int big[1 << 18];
char text[64];

__attribute__((noinline)) static int copy(const char *s) {
    char local[64];
    strcpy(local, s);
    memcpy(text, local, sizeof local);
    return (int)strlen(text);
}

__attribute__((noinline)) static long frame(void) {
    volatile char area[1 << 19];
    area[0] = 1;
    area[sizeof area - 1] = 2;
    return (long)sizeof area;
}

int main(void) {
    int zero = 1;
    for (int i = 0; i < (1 << 18); i++) zero &= big[i] == 0;
    long sum = 0;
    for (int i = 0; i < 2000; i++) big[i * 100] = i;
    for (int i = 0; i < 2000; i++) sum += big[i * 100];
    printf("bss: zero=%d sum=%ld\n", zero, sum);
    printf("buffer: copied %d bytes\n", copy("123456789012345678901234567890123456789012345678901234567890123"));
    printf("frame: %ld\n", frame());
    return 0;
}
