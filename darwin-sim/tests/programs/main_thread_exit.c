// main ends with pthread_exit: the process lives on until its last thread ends, then exits with status 0.
// exit: 0
// stdout: main leaves
// stdout: worker 1 done
// stdout: worker 2 done
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *work(void *arg) {
    long id = (long)arg;
    usleep(2000 * id);
    printf("worker %ld done\n", id);
    fflush(stdout);
    return NULL;
}

int main(void) {
    pthread_t a, b;
    pthread_create(&a, NULL, work, (void *)1);
    pthread_create(&b, NULL, work, (void *)2);
    printf("main leaves\n");
    fflush(stdout);
    pthread_exit(NULL);
}
