#include <stdio.h>

void step(int i) {
    printf("score=%d (inline)\n", i * 3 + 1);
    fflush(stdout);
}
