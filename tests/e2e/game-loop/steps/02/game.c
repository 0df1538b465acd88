#include <stdio.h>

int frames = 0;

/* A bigger tick: it outgrows its padding and moves; frames still keeps its value. */
void tick(void) {
    frames++;
    int checksum = 0;
    for (int i = 0; i < frames % 7 + 3; i++) {
        checksum = checksum * 31 + i;
        checksum ^= frames;
    }
    printf("tick v3: frames=%d checksum=%d\n", frames, checksum != 0);
    fflush(stdout);
}
