#include <stdio.h>

/* New: a global with an initializer (it must be allocated and initialised), and a function. */
int bonus = 100;

int twice(int x) { return 2 * x; }

void step(int i) {
    bonus++;
    printf("step v2 i=%d bonus=%d twice=%d\n", i, bonus, twice(i));
    fflush(stdout);
}
