/* libSystem functions first called after launch are resolved in the running process. */
#include <unistd.h>

void step(int i);

int main(void) {
    for (int i = 0; i < 100000; i++) {
        step(i);
        usleep(50000);
    }
    return 0;
}
