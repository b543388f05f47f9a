// threads: a process with a second thread (crbpf must refuse it untouched).
//
// A worker thread increments two counters in lock-step (a .bss global and a
// heap cell) every millisecond. Prints "READY threads=2", then "TICK n" every
// 200 ms. On SIGUSR1 (handled by whichever thread; the main loop reports) it
// checks that the worker is still making progress, that both counters agree
// and that /proc/self/status says Threads: 2, and prints
// "SELFCHECK OK threads=2 worker=<n>" or "SELFCHECK BAD <what>".
// Usage: threads [selfcheck]
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_long g_a;
static atomic_long *g_b;
static volatile sig_atomic_t g_usr1;

static void on_usr1(int sig) {
	(void)sig;
	g_usr1 = 1;
}

static void *worker(void *arg) {
	(void)arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL); // signals go to the main thread
	for (;;) {
		atomic_fetch_add(&g_a, 1);
		atomic_fetch_add(g_b, 1);
		struct timespec ts = {0, 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static int proc_threads(void) {
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int n = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

static int check(void) {
	long a0 = atomic_load(&g_a);
	// Give the worker up to 5 s to show progress (a loaded machine may not
	// schedule it for a while); a stopped or lost worker never does.
	for (int i = 0; i < 500 && atomic_load(&g_a) == a0; i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	// b is incremented right after a, so read first it can never be ahead.
	long b = atomic_load(g_b), a = atomic_load(&g_a);
	int nt = proc_threads();
	if (a <= a0 || b > a || b < a0 || nt != 2) {
		printf("SELFCHECK BAD worker a0=%ld a=%ld b=%ld threads=%d\n", a0, a, b, nt);
		fflush(stdout);
		return 0;
	}
	printf("SELFCHECK OK threads=%d worker=%ld\n", nt, a);
	fflush(stdout);
	return 1;
}

int main(int argc, char **argv) {
	int self = argc > 1 && strcmp(argv[1], "selfcheck") == 0;
	g_b = calloc(1, sizeof *g_b);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	pthread_t th;
	if (pthread_create(&th, NULL, worker, NULL) != 0) {
		printf("SETUP FAILED pthread_create\n");
		return 1;
	}
	printf("READY threads=2\n");
	fflush(stdout);
	if (self)
		return check() ? 0 : 1;
	for (long n = 1;; n++) {
		if (g_usr1) {
			g_usr1 = 0;
			check();
		}
		printf("TICK %ld\n", n);
		fflush(stdout);
		struct timespec ts = {0, 200 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}
