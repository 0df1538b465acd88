/* A game loop: main keeps looping in the code it started with; tick is hot-updated while frames keeps counting. */
#include <unistd.h>

void tick(void);

int main(void) {
    for (int i = 0; i < 100000; i++) {
        tick();
        usleep(50000);
    }
    return 0;
}
