#include <stdio.h>
#include <unistd.h>

/* The program spends nearly all its time in here, sleeping between lines: at any update, work is on the stack. */
void work(int round) {
    for (int part = 0; part < 4; part++) {
        printf("round %d part %d v1\n", round, part);
        fflush(stdout);
        usleep(40000);
    }
}
