#include <stdio.h>
#include <stdlib.h>

static void fail(int code) {
    printf("failing with %d\n", code);
    fflush(stdout);
    exit(code);
}

int check(int x) {
    if (x > 3) {
        fail(x);
    }
    return x;
}

int main(void) {
    int sum = 0;
    for (int i = 0; i < 10; i++) {
        sum += check(i);
    }
    printf("unreachable %d\n", sum);
    return 0;
}
