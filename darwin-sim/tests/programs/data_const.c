// dyld makes __DATA_CONST read-only once its pointers are fixed up: storing into a const pointer table
// afterwards faults (SIGBUS, as for any write to a read-only page on arm64 macOS).
// signal: 10
// stdout: table[0] points at 7
int seven = 7, eight = 8;
int *const table[] = {&seven, &eight};

#include <stdio.h>

int main(void) {
    printf("table[0] points at %d\n", *table[0]);
    fflush(stdout);
    int *volatile *slot = (int *volatile *)&table[0];
    *slot = &eight;
    printf("not reached: %d\n", *table[0]);
    return 0;
}
