/* A function removed while the program runs. */
#include <unistd.h>

void step(int i);

int main(void) {
    for (int i = 0; i < 100000; i++) {
        step(i);
        usleep(50000);
    }
    return 0;
}
