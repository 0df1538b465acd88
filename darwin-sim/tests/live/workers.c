/* Worker threads to inspect while they run: each spins in work() and counts its rounds in progress[id]; main
 * prints "tick <n>" every half millisecond. Setting quit makes every thread end; main joins them and prints
 * "joined <n>" with the number of workers it joined. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#define WORKERS 3

volatile int quit;
volatile long progress[WORKERS];

__attribute__((noinline)) long work(long id) {
    long acc = id;
    for (int i = 0; i < 2000; i++) acc = acc * 31 + i;
    return acc;
}

static void *worker(void *arg) {
    long id = (long)arg;
    while (!quit) {
        work(id);
        progress[id]++;
    }
    return (void *)(id + 1);
}

int main(void) {
    pthread_t threads[WORKERS];
    for (long i = 0; i < WORKERS; i++) pthread_create(&threads[i], NULL, worker, (void *)i);
    for (int n = 1; !quit && n < 1000000; n++) {
        printf("tick %d\n", n);
        fflush(stdout);
        usleep(500);
    }
    long joined = 0;
    for (int i = 0; i < WORKERS; i++) {
        void *value;
        pthread_join(threads[i], &value);
        joined += (long)value != 0;
    }
    printf("joined %ld\n", joined);
    return 0;
}
