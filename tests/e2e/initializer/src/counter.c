#include <stdio.h>

int counter = 7;

void tick(void) {
    counter++;
    printf("counter=%d\n", counter);
    fflush(stdout);
}
