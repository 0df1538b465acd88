#include <stdio.h>

int main(void) {
    puts("hello, world");
    printf("%d + %d = %d\n", 2, 3, 2 + 3);
    return 0;
}
