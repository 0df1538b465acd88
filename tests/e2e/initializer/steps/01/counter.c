#include <stdio.h>

int counter = 500000;

void tick(void) {
    counter++;
    printf("counter=%d\n", counter);
    fflush(stdout);
}
