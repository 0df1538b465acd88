/* A global whose initializer changes: the running value is kept (and reported); `reset` applies the new one. */
#include <unistd.h>

void tick(void);

int main(void) {
    for (int i = 0; i < 100000; i++) {
        tick();
        usleep(50000);
    }
    return 0;
}
