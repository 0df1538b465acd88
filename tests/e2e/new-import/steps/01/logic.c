#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void step(int i) {
    char text[32];
    snprintf(text, sizeof text, "v2 i=%d", i);
    printf("step %s len=%d atoi=%d\n", text, (int)strlen(text), atoi("42"));
    fflush(stdout);
    puts("puts works");
    fflush(stdout);
}
