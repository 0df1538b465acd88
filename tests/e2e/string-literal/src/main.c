/* String literals changed while the program runs: a format string, and a constant string read through a global. */
#include <stdio.h>
#include <unistd.h>

const char *greeting(void);

int main(void) {
    for (int i = 0; i < 100000; i++) {
        printf("%s i=%d\n", greeting(), i);
        fflush(stdout);
        usleep(50000);
    }
    return 0;
}
