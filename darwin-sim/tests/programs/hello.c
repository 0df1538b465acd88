// A first program: arguments, a global, the heap, both streams, and main's return value as the exit status.
// args: one two
// exit: 7
// stdout: hello from darwin-sim
// stdout: argc=3 argv[1]=one argv[2]=two
// stdout: heap says hi
// stderr: counter=5
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int counter = 5;

int main(int argc, char **argv) {
    printf("hello from %s\n", "darwin-sim");
    printf("argc=%d argv[1]=%s argv[2]=%s\n", argc, argv[1], argv[2]);
    char *p = malloc(32);
    strcpy(p, "heap says hi");
    puts(p);
    free(p);
    fprintf(stderr, "counter=%d\n", counter);
    return counter + 2;
}
