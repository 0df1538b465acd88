#include <stdio.h>

void step(int i) {
    printf("step v1 i=%d\n", i);
    fflush(stdout);
}
