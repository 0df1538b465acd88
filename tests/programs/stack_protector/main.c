#include <stdio.h>
#include <string.h>

unsigned fill(const char *text) {
    char buf[64];
    strcpy(buf, text);
    unsigned h = 0;
    for (int i = 0; buf[i]; i++) {
        h = h * 31 + buf[i];
    }
    return h;
}

int main(void) {
    printf("%u\n", fill("protected by a canary"));
    printf("%u\n", fill("twice"));
    return 0;
}
