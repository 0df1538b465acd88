#include <stdio.h>
#include <string.h>

int grid[64][64];
static long history[1000];
static char scratch[4096];
int last;

int main(void) {
    for (int i = 0; i < 64; i++) {
        for (int j = 0; j < 64; j++) {
            grid[i][j] = i * j;
        }
    }
    long total = 0;
    for (int k = 0; k < 1000; k++) {
        history[k] = grid[k % 64][(k * 7) % 64];
        total += history[k];
    }
    memset(scratch, 'x', sizeof scratch - 1);
    last = (int)strlen(scratch);
    printf("total=%ld last=%d first=%ld\n", total, last, history[0]);
    return 0;
}
