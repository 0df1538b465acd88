/* A global whose size changes: it gets fresh storage from the new object and the report says its state was reset. */
#include <unistd.h>

void tick(void);

int main(void) {
    for (int i = 0; i < 100000; i++) {
        tick();
        usleep(50000);
    }
    return 0;
}
