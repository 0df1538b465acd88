#include <stdio.h>
#include <unistd.h>

/* A few bytes longer than v1 (still within its padding), so every return address inside it shifts: a thread
   returning from usleep into an overwritten body would land in the wrong instruction. */
void work(int round) {
    volatile int version = 2;
    for (int part = 0; part < 4; part++) {
        printf("round %d part %d v%d\n", round, part, version);
        fflush(stdout);
        usleep(40000);
    }
}
