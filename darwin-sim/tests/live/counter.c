/* A program to patch while it runs: prints "<counter> <value()>" every half millisecond. Tests replace value()'s
 * body through the Task trait and watch the second column change while the first keeps counting. */
#include <stdio.h>
#include <unistd.h>

int counter;
int one = 1;

/* Reads a global so that the compiler cannot fold the call away. */
__attribute__((noinline)) int value(void) { return one; }

int main(void) {
    while (counter < 1000000) {
        counter++;
        printf("%d %d\n", counter, value());
        usleep(500);
    }
    return 0;
}
