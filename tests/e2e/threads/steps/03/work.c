#include <unistd.h>

volatile int sink;
int calls = 40;

/* A new function and a new global, called from every worker. */
int bonus(int id) {
    calls++;
    return id >= 0 ? 4 : 0;
}

int step(int id, int n) {
    sink = id + n;
    usleep(2000);
    return bonus(id);
}
