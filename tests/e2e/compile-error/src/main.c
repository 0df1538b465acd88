/* A compile error leaves the running program alone; the next good edit applies. */
#include <unistd.h>

void step(int i);

int main(void) {
    for (int i = 0; i < 100000; i++) {
        step(i);
        usleep(50000);
    }
    return 0;
}
