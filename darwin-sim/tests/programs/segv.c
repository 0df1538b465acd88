// A load through a null pointer faults in __PAGEZERO (SIGSEGV).
// signal: 11
// stdout: about to crash
#include <stdio.h>

int *volatile nowhere;

int main(void) {
    puts("about to crash");
    fflush(stdout);
    return *nowhere;
}
