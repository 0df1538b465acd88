// Threads: create and join with results, a mutex-protected counter, an atomic counter, a condition-variable queue
// between a producer and two consumers, a busy-waiting ping-pong that only ends if threads are preempted, a
// detached thread, pthread_self and pthread_equal, and trylock on a held mutex.
// exit: 0
// stdout: joined 4 workers, results 0+10+20+30=60
// stdout: locked total 20000, atomic total 20000
// stdout: queue: produced 200 items, consumed 200, sum 19900
// stdout: ping-pong: 50 rounds
// stdout: detached thread ran: 1
// stdout: self: worker!=main 1, worker==handle 1
// stdout: trylock on a held mutex: busy 1
#include <pthread.h>
#include <sched.h>
#include <stdio.h>

#define WORKERS 4
#define ROUNDS 5000
#define ITEMS 200

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long locked_total;
static long atomic_total;
static pthread_t seen_self[WORKERS];

static void *count(void *arg) {
    long id = (long)arg;
    seen_self[id] = pthread_self();
    for (int i = 0; i < ROUNDS; i++) {
        pthread_mutex_lock(&lock);
        long v = locked_total;
        // Work inside the critical section, so that slices end inside it.
        for (int k = 0; k < 8; k++) v += (k & 1) ? -1 : 1, v -= (k & 1) ? -1 : 1;
        locked_total = v + 1;
        pthread_mutex_unlock(&lock);
        __atomic_fetch_add(&atomic_total, 1, __ATOMIC_RELAXED);
    }
    return (void *)(id * 10);
}

static pthread_mutex_t qlock;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_full;
static int queue[4];
static int head, count_in_queue;
static long consumed_sum, consumed_items;

static void *producer(void *arg) {
    (void)arg;
    for (int i = 0; i <= ITEMS + 1; i++) {
        int item = i < ITEMS ? i : -1; // two sentinels, one per consumer
        pthread_mutex_lock(&qlock);
        while (count_in_queue == 4) pthread_cond_wait(&not_full, &qlock);
        queue[(head + count_in_queue) % 4] = item;
        count_in_queue++;
        pthread_cond_signal(&not_empty);
        pthread_mutex_unlock(&qlock);
    }
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&qlock);
        while (count_in_queue == 0) pthread_cond_wait(&not_empty, &qlock);
        int item = queue[head];
        head = (head + 1) % 4;
        count_in_queue--;
        pthread_cond_broadcast(&not_full);
        if (item >= 0) {
            consumed_sum += item;
            consumed_items++;
        }
        pthread_mutex_unlock(&qlock);
        if (item < 0) return NULL;
    }
}

static int turn;

static void *pong(void *arg) {
    int rounds = *(int *)arg;
    for (int i = 0; i < rounds; i++) {
        while (__atomic_load_n(&turn, __ATOMIC_ACQUIRE) != 1) {
        }
        __atomic_store_n(&turn, 0, __ATOMIC_RELEASE);
    }
    return NULL;
}

static pthread_mutex_t dlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dcond = PTHREAD_COND_INITIALIZER;
static int detached_ran;

static void *detached(void *arg) {
    (void)arg;
    pthread_mutex_lock(&dlock);
    detached_ran = 1;
    pthread_cond_signal(&dcond);
    pthread_mutex_unlock(&dlock);
    return NULL;
}

static void *try_held(void *arg) {
    return (void *)(long)pthread_mutex_trylock((pthread_mutex_t *)arg);
}

int main(void) {
    pthread_t workers[WORKERS];
    for (long i = 0; i < WORKERS; i++) pthread_create(&workers[i], NULL, count, (void *)i);
    long results = 0;
    for (int i = 0; i < WORKERS; i++) {
        void *value;
        pthread_join(workers[i], &value);
        results += (long)value;
    }
    printf("joined %d workers, results 0+10+20+30=%ld\n", WORKERS, results);
    printf("locked total %ld, atomic total %ld\n", locked_total, atomic_total);

    pthread_mutex_init(&qlock, NULL);
    pthread_cond_init(&not_full, NULL);
    pthread_t p, c1, c2;
    pthread_create(&c1, NULL, consumer, NULL);
    pthread_create(&c2, NULL, consumer, NULL);
    pthread_create(&p, NULL, producer, NULL);
    pthread_join(p, NULL);
    pthread_join(c1, NULL);
    pthread_join(c2, NULL);
    pthread_cond_destroy(&not_full);
    pthread_mutex_destroy(&qlock);
    printf("queue: produced %d items, consumed %ld, sum %ld\n", ITEMS, consumed_items, consumed_sum);

    int rounds = 50;
    pthread_t ponger;
    pthread_create(&ponger, NULL, pong, &rounds);
    for (int i = 0; i < rounds; i++) {
        __atomic_store_n(&turn, 1, __ATOMIC_RELEASE);
        while (__atomic_load_n(&turn, __ATOMIC_ACQUIRE) != 0) {
        }
    }
    pthread_join(ponger, NULL);
    printf("ping-pong: %d rounds\n", rounds);

    pthread_t d;
    pthread_mutex_lock(&dlock);
    pthread_create(&d, NULL, detached, NULL);
    pthread_detach(d);
    while (!detached_ran) pthread_cond_wait(&dcond, &dlock);
    pthread_mutex_unlock(&dlock);
    printf("detached thread ran: %d\n", detached_ran);

    int distinct = 1, same = 1;
    for (int i = 0; i < WORKERS; i++) {
        distinct &= !pthread_equal(seen_self[i], pthread_self());
        same &= pthread_equal(seen_self[i], workers[i]) != 0;
    }
    printf("self: worker!=main %d, worker==handle %d\n", distinct, same);

    pthread_mutex_lock(&lock);
    pthread_t t;
    void *busy;
    pthread_create(&t, NULL, try_held, &lock);
    pthread_join(t, &busy);
    pthread_mutex_unlock(&lock);
    printf("trylock on a held mutex: busy %d\n", (long)busy == 16);
    return 0;
}
