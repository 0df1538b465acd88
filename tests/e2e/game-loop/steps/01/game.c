#include <stdio.h>

int frames = 0;

void tick(void) {
    frames++;
    printf("tick v2: frames=%d speed=%d\n", frames, frames * 2);
    fflush(stdout);
}
