// A thread that dereferences NULL ends the whole process with SIGSEGV, whatever the other threads do.
// signal: 11
// stdout: main waits
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *crash(void *arg) {
    usleep(1000);
    return (void *)(long)*(volatile int *)arg;
}

int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, crash, NULL);
    printf("main waits\n");
    fflush(stdout);
    pthread_join(t, NULL);
    printf("not reached\n");
    return 0;
}
