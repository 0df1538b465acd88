#include <stdio.h>

long long counter = 0;

void tick(void) {
    counter++;
    printf("counter=%lld (64-bit)\n", counter);
    fflush(stdout);
}
