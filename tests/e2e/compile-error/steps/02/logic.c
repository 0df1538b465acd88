#include <stdio.h>

void step(int i) {
    printf("step v3 i=%d\n", i);
    fflush(stdout);
}
