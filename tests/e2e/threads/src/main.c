/* Four worker threads call step() in a loop and count their rounds under a mutex; main prints what each worker's
 * last call returned and the total. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#define WORKERS 4

int step(int id, int n);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long total;
static int seen[WORKERS];
static volatile int done;

static void *worker(void *arg) {
    long id = (long)arg;
    for (int n = 0; n < 100000 && !done; n++) {
        int value = step((int)id, n);
        pthread_mutex_lock(&lock);
        seen[id] = value;
        total++;
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

int main(void) {
    pthread_t threads[WORKERS];
    for (long i = 0; i < WORKERS; i++) pthread_create(&threads[i], NULL, worker, (void *)i);
    for (int t = 0; t < 100000; t++) {
        pthread_mutex_lock(&lock);
        printf("seen %d %d %d %d total %ld\n", seen[0], seen[1], seen[2], seen[3], total);
        pthread_mutex_unlock(&lock);
        fflush(stdout);
        usleep(20000);
    }
    done = 1;
    for (int i = 0; i < WORKERS; i++) pthread_join(threads[i], NULL);
    return 0;
}
