#include <unistd.h>

volatile int sink;

/* Grown well past its padding, while the workers sleep inside it. */
int step(int id, int n) {
    int acc = id;
    for (int i = 0; i < 8; i++) acc = acc * 31 + n + i;
    sink = acc;
    sink = acc ^ 1;
    sink = acc ^ 2;
    sink = acc ^ 3;
    sink = acc ^ 4;
    sink = acc ^ 5;
    sink = acc ^ 6;
    sink = acc ^ 7;
    sink = acc ^ 8;
    sink = acc ^ 9;
    sink = acc ^ 10;
    sink = acc ^ 11;
    sink = acc ^ 12;
    sink = acc ^ 13;
    sink = acc ^ 14;
    sink = acc ^ 15;
    sink = acc ^ 16;
    sink = acc ^ 17;
    sink = acc ^ 18;
    sink = acc ^ 19;
    sink = acc ^ 20;
    usleep(2000);
    return 3;
}
