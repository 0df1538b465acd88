// exit() from deep inside the program ends it with that status; nothing after it runs.
// exit: 3
// stdout: before exit
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static void leave(int depth) {
    if (depth == 0) exit(3);
    leave(depth - 1);
    puts("unreachable");
}

int main(void) {
    puts("before exit");
    leave(10);
    return 0;
}
