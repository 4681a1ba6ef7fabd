// A small pool of persistent worker threads for short parallel work (docs/design.md, "Threads").
// Decoding runs ~150 products per token, each a fraction of a millisecond; waking a sleeping thread
// for each (libdispatch) cost about 7% of a step. These workers spin for a while after each job, so
// the next one starts without a system call, then sleep on a condition variable.
//
// Chunk c of a job runs on worker c - 1 (the caller runs chunk 0): each worker has its own slot,
// written by the submitter only while the worker is idle, so no chunk is ever claimed twice and the
// split is the caller's (results do not depend on which thread ran what).
#include "kosmos_kernels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define KP_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define KP_PAUSE() __asm__ __volatile__("yield")
#else
#define KP_PAUSE() ((void)0)
#endif

typedef struct {
    _Atomic unsigned long posted;    // generation of the last job posted to this worker
    _Atomic unsigned long finished;  // generation of the last job it finished
    _Atomic int sleeping;
    kk_pool_task task;
    void *context;
    long chunk;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    char pad[64];
} kp_worker;

static pthread_mutex_t kp_submit = PTHREAD_MUTEX_INITIALIZER;  // one job at a time
static pthread_mutex_t kp_setup = PTHREAD_MUTEX_INITIALIZER;
static kp_worker *kp_workers;
static int kp_count;  // started workers
static unsigned long kp_generation;
static _Atomic long kp_spin_ns = 200000;  // how long an idle worker spins before it sleeps
static _Atomic unsigned long kp_quiet;  // bumped by kk_pool_quiesce: spinning workers sleep now
static _Atomic long kp_sleeps;  // times a worker went to sleep (kk_pool_sleeps)
static _Thread_local int kp_in_worker;

static long kp_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000000000L + t.tv_nsec;
}

static void *kp_main(void *arg) {
    kp_worker *w = arg;
    kp_in_worker = 1;
    unsigned long seen = 0;
    // The quiesce count as of the end of the last job: read before the job is published as
    // finished, so a kk_pool_quiesce by a caller that has seen it finished is never missed.
    unsigned long quiet = atomic_load(&kp_quiet);
    for (;;) {
        unsigned long g = atomic_load_explicit(&w->posted, memory_order_acquire);
        const long spin = atomic_load_explicit(&kp_spin_ns, memory_order_relaxed);
        if (g == seen && spin > 0) {
            const long start = kp_now_ns();
            for (int i = 0; (g = atomic_load_explicit(&w->posted, memory_order_acquire)) == seen; i++) {
                KP_PAUSE();
                if (atomic_load_explicit(&kp_quiet, memory_order_relaxed) != quiet) break;
                if ((i & 255) == 255 && kp_now_ns() - start > spin) break;
            }
        }
        if (g == seen) {
            // Dekker with the submitter: sleeping is set before posted is read again, and the
            // submitter sets posted before it reads sleeping (both sequentially consistent).
            pthread_mutex_lock(&w->lock);
            atomic_store(&w->sleeping, 1);
            atomic_fetch_add_explicit(&kp_sleeps, 1, memory_order_relaxed);
            while ((g = atomic_load(&w->posted)) == seen) pthread_cond_wait(&w->wake, &w->lock);
            atomic_store(&w->sleeping, 0);
            pthread_mutex_unlock(&w->lock);
        }
        seen = g;
        w->task(w->context, w->chunk);
        quiet = atomic_load(&kp_quiet);
        atomic_store_explicit(&w->finished, g, memory_order_release);
    }
    return NULL;
}

int kk_pool_start(int threads) {
    const int workers = threads - 1;
    pthread_mutex_lock(&kp_setup);
    if (kp_workers == NULL && workers > 0) {
        kp_worker *all = calloc((size_t)workers, sizeof(kp_worker));
        int started = 0;
        if (all) {
            for (; started < workers; started++) {
                kp_worker *w = &all[started];
                pthread_mutex_init(&w->lock, NULL);
                pthread_cond_init(&w->wake, NULL);
                pthread_attr_t attr;
                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                int failed = pthread_create(&w->thread, &attr, kp_main, w);
                pthread_attr_destroy(&attr);
                if (failed) break;
            }
        }
        kp_count = started;
        kp_workers = all;  // never freed: the workers live as long as the process
    }
    int n = kp_count;
    pthread_mutex_unlock(&kp_setup);
    return n + 1;
}

int kk_pool_run(int chunks, kk_pool_task task, void *context) {
    if (chunks < 1) return 0;
    if (chunks == 1) {
        task(context, 0);
        return 0;
    }
    if (kp_in_worker) return -1;  // nested inside a pool job: the caller chooses another way
    if (pthread_mutex_trylock(&kp_submit) != 0) return -1;  // another job is running
    if (chunks - 1 > kp_count) {
        pthread_mutex_unlock(&kp_submit);
        return -1;
    }
    const unsigned long g = ++kp_generation;
    for (int c = 1; c < chunks; c++) {
        kp_worker *w = &kp_workers[c - 1];
        w->task = task;
        w->context = context;
        w->chunk = c;
        atomic_store(&w->posted, g);
        if (atomic_load(&w->sleeping)) {
            pthread_mutex_lock(&w->lock);
            pthread_cond_signal(&w->wake);
            pthread_mutex_unlock(&w->lock);
        }
    }
    task(context, 0);
    for (int c = 1; c < chunks; c++) {
        kp_worker *w = &kp_workers[c - 1];
        for (int i = 0; atomic_load_explicit(&w->finished, memory_order_acquire) != g; i++) {
            KP_PAUSE();
            if ((i & 1023) == 1023) sched_yield();  // the worker may have been descheduled
        }
    }
    pthread_mutex_unlock(&kp_submit);
    return 0;
}

typedef struct {
    kk_pool_task task;
    void *context;
    long chunks;
    _Atomic long next;
} kp_claims;

static void kp_claim_loop(void *context, long thread) {
    (void)thread;
    kp_claims *job = context;
    for (long c; (c = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed)) < job->chunks;) {
        job->task(job->context, c);
    }
}

int kk_pool_run_claimed(int threads, long chunks, kk_pool_task task, void *context) {
    if (chunks < 1) return 0;
    kp_claims job = {task, context, chunks, 0};
    // kk_pool_run's completion wait (acquire of each worker's finished) orders every chunk's
    // writes before the return.
    return kk_pool_run(threads < chunks ? threads : (int)chunks, kp_claim_loop, &job);
}

void kk_pool_set_spin(long nanoseconds) {
    atomic_store(&kp_spin_ns, nanoseconds < 0 ? 0 : nanoseconds);
}

long kk_pool_sleeps(void) { return atomic_load(&kp_sleeps); }

void kk_pool_quiesce(void) { atomic_fetch_add_explicit(&kp_quiet, 1, memory_order_relaxed); }
