#include <unistd.h>

volatile int sink;

/* Each worker spends nearly all its time sleeping in here: at any update, threads are inside step. */
int step(int id, int n) {
    sink = id + n;
    usleep(2000);
    return 1;
}
