#include <stdio.h>

struct big { int a[40]; double d; char tag[24]; };

struct big make(int seed) {
    struct big b;
    for (int i = 0; i < 40; i++) {
        b.a[i] = seed * i;
    }
    b.d = seed / 4.0;
    for (int i = 0; i < 23; i++) {
        b.tag[i] = (char)('a' + (seed + i) % 26);
    }
    b.tag[23] = 0;
    return b;
}

static struct big saved;

int sum(struct big b) {
    int s = 0;
    for (int i = 0; i < 40; i++) {
        s += b.a[i];
    }
    return s;
}

int main(void) {
    struct big x = make(3);
    saved = x;
    struct big y = saved;
    y.a[0] = 1000;
    printf("%d %d %.2f %s\n", sum(x), sum(y), saved.d, saved.tag);
    return 0;
}
