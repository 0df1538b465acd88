// Thread and mutex attributes: a detached thread from an attribute, a thread on a 1 MiB stack using 600 KiB of
// it (more than the default 512 KiB of a macOS thread), a too-small stack refused, a recursive mutex locked
// three times by its holder and shared by two threads, and an error-checking mutex refusing a relock and an
// unlock by another thread.
// exit: 0
// stdout: detach state detached 1, joinable by default 1
// stdout: detached thread ran 1
// stdout: stack size 1048576, small stack refused 1
// stdout: big frame sum 153600
// stdout: recursive type 1, held 3 deep then free 1, total 4000
// stdout: errorcheck relock refused 1, foreign unlock refused 1
#include <pthread.h>
#include <stdio.h>

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

static void *big_frame(void *arg) {
    volatile char buffer[600 * 1024];
    long sum = 0;
    for (unsigned i = 0; i < sizeof buffer; i += 4096) buffer[i] = 1;
    for (unsigned i = 0; i < sizeof buffer; i += 4096) sum += buffer[i];
    *(long *)arg = sum * 1024;
    return NULL;
}

static pthread_mutex_t recursive;
static long total;

static void add(int depth) {
    pthread_mutex_lock(&recursive);
    if (depth > 0) add(depth - 1);
    else total++;
    pthread_mutex_unlock(&recursive);
}

static void *adder(void *arg) {
    (void)arg;
    for (int i = 0; i < 2000; i++) add(2);
    return NULL;
}

static pthread_mutex_t checked;

static void *foreign_unlock(void *arg) {
    return (void *)(long)(pthread_mutex_unlock(&checked) != 0);
}

static void *try_recursive(void *arg) {
    int got = pthread_mutex_trylock(&recursive) == 0;
    if (got) pthread_mutex_unlock(&recursive);
    return (void *)(long)got;
}

int main(void) {
    pthread_attr_t attr;
    int state;
    pthread_attr_init(&attr);
    pthread_attr_getdetachstate(&attr, &state);
    int joinable = state == PTHREAD_CREATE_JOINABLE;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_getdetachstate(&attr, &state);
    printf("detach state detached %d, joinable by default %d\n", state == PTHREAD_CREATE_DETACHED, joinable);
    pthread_t t;
    pthread_mutex_lock(&dlock);
    pthread_create(&t, &attr, detached, NULL);
    while (!detached_ran) pthread_cond_wait(&dcond, &dlock);
    pthread_mutex_unlock(&dlock);
    pthread_attr_destroy(&attr);
    printf("detached thread ran %d\n", detached_ran);

    pthread_attr_init(&attr);
    int small_refused = pthread_attr_setstacksize(&attr, 1000) != 0;
    pthread_attr_setstacksize(&attr, 1024 * 1024);
    size_t size;
    pthread_attr_getstacksize(&attr, &size);
    printf("stack size %zu, small stack refused %d\n", size, small_refused);
    long sum = 0;
    pthread_create(&t, &attr, big_frame, &sum);
    pthread_join(t, NULL);
    pthread_attr_destroy(&attr);
    printf("big frame sum %ld\n", sum);

    pthread_mutexattr_t mattr;
    int type;
    pthread_mutexattr_init(&mattr);
    pthread_mutexattr_settype(&mattr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutexattr_gettype(&mattr, &type);
    pthread_mutex_init(&recursive, &mattr);
    pthread_mutexattr_destroy(&mattr);
    pthread_mutex_lock(&recursive);
    pthread_mutex_lock(&recursive);
    pthread_mutex_trylock(&recursive);
    void *other_got;
    pthread_create(&t, NULL, try_recursive, NULL);
    pthread_join(t, &other_got);
    pthread_mutex_unlock(&recursive);
    pthread_mutex_unlock(&recursive);
    pthread_mutex_unlock(&recursive);
    void *after_got;
    pthread_create(&t, NULL, try_recursive, NULL);
    pthread_join(t, &after_got);
    pthread_t a, b;
    pthread_create(&a, NULL, adder, NULL);
    pthread_create(&b, NULL, adder, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    printf("recursive type %d, held 3 deep then free %d, total %ld\n", type == PTHREAD_MUTEX_RECURSIVE,
           !other_got && after_got, total);

    pthread_mutexattr_init(&mattr);
    pthread_mutexattr_settype(&mattr, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&checked, &mattr);
    pthread_mutex_lock(&checked);
    int relock_refused = pthread_mutex_lock(&checked) != 0;
    void *foreign;
    pthread_create(&t, NULL, foreign_unlock, NULL);
    pthread_join(t, &foreign);
    pthread_mutex_unlock(&checked);
    pthread_mutex_destroy(&checked);
    printf("errorcheck relock refused %d, foreign unlock refused %d\n", relock_refused, (int)(long)foreign);
    return 0;
}
