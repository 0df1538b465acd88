#include <stdio.h>

__attribute__((weak)) int tunable = 1;
__attribute__((weak)) const char *flavour(void) { return "default"; }
int strong_only(void);

int main(void) {
    printf("tunable=%d flavour=%s strong=%d\n", tunable, flavour(), strong_only());
    return 0;
}
