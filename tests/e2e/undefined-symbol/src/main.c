/* An undefined symbol rejects the update as a whole: nothing of it reaches the program or the file. */
#include <unistd.h>

void step(int i);

int main(void) {
    for (int i = 0; i < 100000; i++) {
        step(i);
        usleep(50000);
    }
    return 0;
}
