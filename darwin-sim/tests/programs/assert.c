// A failed assert prints Darwin's message and aborts (SIGABRT).
// signal: 6
// stdout: checking
// stderr: Assertion failed: (x == 2), function check, file assert.c, line 13.
#include <assert.h>
#include <stdio.h>

volatile int one = 1;

__attribute__((noinline)) static void check(int x) {
    puts("checking");
    fflush(stdout);
    assert(x == 2);
    puts("not reached");
}

int main(void) {
    check(one);
    return 0;
}
