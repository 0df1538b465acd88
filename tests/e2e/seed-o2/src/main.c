/* The seed example: main's loop keeps running in the code it started with; bar and addToBar are hot-updated. */
#include <assert.h>
#include <stdio.h>
#include <unistd.h>

int bar(void);
void addToBar(int *acc);

int main(void) {
    int acc = 0;
    for (int i = 0; i < 100000; i++) {
        addToBar(&acc);
        assert(bar() != 12);
        printf("acc=%d bar=%d\n", acc, bar());
        fflush(stdout);
        usleep(50000);
    }
    return 0;
}
