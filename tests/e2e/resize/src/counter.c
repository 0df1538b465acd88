#include <stdio.h>

int counter = 0;

void tick(void) {
    counter++;
    printf("counter=%d\n", counter);
    fflush(stdout);
}
