#include <stdio.h>

int not_defined_anywhere(int x);

int helper(int x) { return x + 1; }

void step(int i) {
    printf("step v2 i=%d helper=%d missing=%d\n", i, helper(i), not_defined_anywhere(i));
    fflush(stdout);
}
