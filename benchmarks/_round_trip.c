/* Cache-line round trip between two CPUs: how far apart the machine placed them.
 *
 * Usage: _round_trip CPU_A CPU_B ROUNDS. Two threads, pinned to CPU_A and CPU_B, pass one
 * cache line back and forth ROUNDS times; prints the mean nanoseconds per round trip.
 * Used by benchmarks/_placement.py (compiled into a temporary directory, never into the tree).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Alignas(128) _Atomic long flag;
static long rounds;
static int cpu_b;

static int pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *partner(void *arg) {
    (void)arg;
    if (pin(cpu_b) != 0) exit(3);
    for (long i = 0; i < rounds; i++) {
        while (atomic_load_explicit(&flag, memory_order_acquire) != 2 * i + 1) {}
        atomic_store_explicit(&flag, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    int cpu_a = atoi(argv[1]);
    cpu_b = atoi(argv[2]);
    rounds = atol(argv[3]);
    if (rounds < 1 || pin(cpu_a) != 0) return 2;
    pthread_t thread;
    if (pthread_create(&thread, NULL, partner, NULL) != 0) return 3;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < rounds; i++) {
        atomic_store_explicit(&flag, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(&flag, memory_order_acquire) != 2 * i + 2) {}
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    pthread_join(thread, NULL);
    printf("%.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / rounds);
    return 0;
}
