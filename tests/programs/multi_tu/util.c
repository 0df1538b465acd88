#include "shared.h"

int total = 10;
int calls;

static int helper(int x) { return x * 2; }

int twice(int x) { return helper(x); }

void bump(int by) {
    total += twice(by);
    calls++;
}
