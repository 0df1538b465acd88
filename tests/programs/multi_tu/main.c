#include <stdio.h>
#include "shared.h"

static int helper(int x) { return x + 1000; } /* same name as a static in util.c */

int main(void) {
    for (int i = 0; i < 5; i++) {
        bump(i);
    }
    printf("total=%d calls=%d helper=%d twice=%d\n", total, calls, helper(1), twice(21));
    printf("name=%s\n", unit_name());
    return 0;
}
