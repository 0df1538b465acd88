/* Function pointers taken before an update call the newest body: one in a heap struct, one in a global table. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct handler {
    const char *name;
    int (*on_event)(int);
};

int handle(int event);

static int (*table[1])(int) = {handle};

int main(void) {
    struct handler *h = malloc(sizeof *h);
    h->name = "heap";
    h->on_event = handle;
    for (int i = 0; i < 100000; i++) {
        int a = h->on_event(i);
        int b = table[0](i);
        printf("%s=%d table=%d\n", h->name, a, b);
        fflush(stdout);
        usleep(50000);
    }
    free(h);
    return 0;
}
