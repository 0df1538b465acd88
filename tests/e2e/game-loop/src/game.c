#include <stdio.h>

int frames = 0;

void tick(void) {
    frames++;
    printf("tick v1: frames=%d\n", frames);
    fflush(stdout);
}
