/* A zero-initialised global gets an initializer: the running value is kept; `reset` applies the new one. */
#include <unistd.h>

void tick(void);

int main(void) {
    for (int i = 0; i < 100000; i++) {
        tick();
        usleep(50000);
    }
    return 0;
}
