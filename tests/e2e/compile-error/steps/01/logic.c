#include <stdio.h>

void step(int i) {
    printf("step v2 i=%d\n", i)
    fflush(stdout);
}
