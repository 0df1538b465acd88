/* Two translation units use one header; editing the header recompiles both, and main's loop sees both change. */
#include <stdio.h>
#include <unistd.h>

#include "units.h"

int main(void) {
    for (int i = 0; i < 100000; i++) {
        printf("length=%d area=%d\n", length_of(10), area_of(10));
        fflush(stdout);
        usleep(50000);
    }
    return 0;
}
