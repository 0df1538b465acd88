#include <stdio.h>

static const int primes[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
const short deltas[8] = {-3, 7, -11, 13, 0, 5, -8, 21};

struct point { int x, y; const char *label; };
static const struct point points[] = {{1, 2, "a"}, {3, 4, "b"}, {-5, 6, "c"}};

static const unsigned char sbox[16] = {
    0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76,
};

int main(void) {
    long sum = 0;
    for (unsigned i = 0; i < sizeof primes / sizeof primes[0]; i++) {
        sum += (long)primes[i] * deltas[i % 8];
    }
    printf("sum=%ld\n", sum);
    for (int i = 0; i < 3; i++) {
        printf("%s=(%d,%d) ", points[i].label, points[i].x, points[i].y);
    }
    printf("\n");
    unsigned h = 0;
    for (int i = 0; i < 64; i++) {
        h = (h << 1) ^ sbox[(h + i) & 15];
    }
    printf("h=%u\n", h);
    return 0;
}
