// signals: signal state and CPU identity that must survive a restore.
//
// Setup: a 64 KiB sigaltstack; SIGUSR1 handler with SA_SIGINFO|SA_ONSTACK;
// SIGUSR2 blocked with sigprocmask. The main loop pins itself alternately to
// CPU 0 and CPU 1 (sched_setaffinity) and checks that sched_getcpu() -- served
// from the rseq area by glibc >= 2.35 -- and the raw getcpu system call both
// return the pinned CPU: cpu_ok counts agreeing checks, cpu_bad the others.
//
// Output:
//   READY cpus=<n> rseq=<0|1>
//   TICK <n> cpu_ok=<n> cpu_bad=<n>       every 200 ms
//   on SIGUSR1:
//   SIG usr1 altstack=<0|1> usr2pending=<0|1> blocked_usr2=<0|1> cpu_ok=<n> cpu_bad=<n>
//       handler_ok=<0|1> altstack_cfg=<0|1> rseq=<0|1> rseq_cpu_bad=<n> count=<n>
//   altstack: the handler ran on the alternate stack (SS_ONSTACK and its own
//   frame inside the area); handler_ok: sigaction(SIGUSR1) still has our
//   handler and flags; altstack_cfg: sigaltstack() still reports the area;
//   rseq_cpu_bad: checks where the rseq area's cpu_id disagreed with getcpu.
// With "selfcheck" it raises SIGUSR2 and SIGUSR1 itself after 50 checks,
// prints the SIG line and "SELFCHECK OK" if everything is as expected.
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ALTSTACK_SIZE (64 * 1024)

static char *g_alt;
static volatile sig_atomic_t g_usr1;
static volatile int g_on_altstack;
static volatile int g_usr1_count;
static long g_cpu_ok, g_cpu_bad, g_rseq_bad;

static void on_usr1(int sig, siginfo_t *info, void *uctx) {
	(void)sig;
	(void)info;
	(void)uctx;
	char local;
	stack_t cur;
	int flag = sigaltstack(NULL, &cur) == 0 && (cur.ss_flags & SS_ONSTACK);
	int inside = &local >= g_alt && &local < g_alt + ALTSTACK_SIZE;
	g_on_altstack = flag && inside;
	g_usr1_count++;
	g_usr1 = 1;
}

static int rseq_registered(void) {
	return __rseq_size > 0;
}

// rseq_cpu reads cpu_id from this thread's rseq area (-1 if unregistered).
static int rseq_cpu(void) {
	if (!rseq_registered())
		return -1;
	struct rseq *rs = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
	return (int)*(volatile uint32_t *)&rs->cpu_id;
}

static int raw_getcpu(void) {
	unsigned cpu = 0;
	if (syscall(SYS_getcpu, &cpu, NULL, NULL) != 0)
		return -1;
	return (int)cpu;
}

static int pin(int cpu) {
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof set, &set);
}

static void check_cpu(int cpu) {
	int a = sched_getcpu(), b = raw_getcpu();
	if (a == cpu && b == cpu)
		g_cpu_ok++;
	else
		g_cpu_bad++;
	if (rseq_registered() && rseq_cpu() != b)
		g_rseq_bad++;
}

static void report(void) {
	sigset_t pend, mask;
	sigpending(&pend);
	sigprocmask(SIG_BLOCK, NULL, &mask);
	struct sigaction sa;
	sigaction(SIGUSR1, NULL, &sa);
	int handler_ok = sa.sa_sigaction == on_usr1 && (sa.sa_flags & SA_SIGINFO) && (sa.sa_flags & SA_ONSTACK);
	stack_t ss;
	int alt_cfg = sigaltstack(NULL, &ss) == 0 && ss.ss_sp == g_alt && ss.ss_size == ALTSTACK_SIZE &&
	              !(ss.ss_flags & SS_DISABLE);
	printf("SIG usr1 altstack=%d usr2pending=%d blocked_usr2=%d cpu_ok=%ld cpu_bad=%ld "
	       "handler_ok=%d altstack_cfg=%d rseq=%d rseq_cpu_bad=%ld count=%d\n",
	       g_on_altstack, sigismember(&pend, SIGUSR2), sigismember(&mask, SIGUSR2), g_cpu_ok,
	       g_cpu_bad, handler_ok, alt_cfg, rseq_registered(), g_rseq_bad, (int)g_usr1_count);
	fflush(stdout);
}

int main(int argc, char **argv) {
	int self = argc > 1 && strcmp(argv[1], "selfcheck") == 0;
	g_alt = malloc(ALTSTACK_SIZE);
	stack_t ss = {.ss_sp = g_alt, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
	if (g_alt == NULL || sigaltstack(&ss, NULL) != 0) {
		perror("sigaltstack");
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0) {
		perror("sigaction");
		return 1;
	}
	sigset_t usr2;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &usr2, NULL) != 0) {
		perror("sigprocmask");
		return 1;
	}
	int ncpu = 0;
	for (int c = 0; c < 2; c++)
		if (pin(c) == 0)
			ncpu++;
	printf("READY cpus=%d rseq=%d\n", ncpu, rseq_registered());
	fflush(stdout);

	long iter = 0, ticks = 0;
	struct timespec last;
	clock_gettime(CLOCK_MONOTONIC, &last);
	for (;;) {
		int cpu = (int)(iter++ % 2);
		if (pin(cpu) == 0)
			check_cpu(cpu);
		if (self && iter == 50) {
			raise(SIGUSR2); // blocked: stays pending
			raise(SIGUSR1);
		}
		if (g_usr1) {
			g_usr1 = 0;
			report();
			if (self) {
				sigset_t pend, mask;
				sigpending(&pend);
				sigprocmask(SIG_BLOCK, NULL, &mask);
				int ok = g_on_altstack && sigismember(&pend, SIGUSR2) && sigismember(&mask, SIGUSR2) &&
				         g_cpu_bad == 0 && g_cpu_ok >= 49 && g_rseq_bad == 0;
				printf(ok ? "SELFCHECK OK\n" : "SELFCHECK BAD\n");
				return ok ? 0 : 1;
			}
		}
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - last.tv_sec) * 1000000000L + (now.tv_nsec - last.tv_nsec) >= 200000000L) {
			last = now;
			printf("TICK %ld cpu_ok=%ld cpu_bad=%ld\n", ++ticks, g_cpu_ok, g_cpu_bad);
			fflush(stdout);
		}
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}
