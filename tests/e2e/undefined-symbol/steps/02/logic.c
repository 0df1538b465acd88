#include <stdio.h>

int helper(int x) { return x + 1; }

void step(int i) {
    printf("step v3 i=%d helper=%d\n", i, helper(i));
    fflush(stdout);
}
