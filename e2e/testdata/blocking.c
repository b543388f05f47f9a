// blocking: enters one blocking system call and reports how it ended.
//
// Usage: blocking MODE [MS]
//   nanosleep           nanosleep(MS, default 3000 ms)
//   clocknanosleep_abs  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, now+MS)
//   pause               pause() with a SIGUSR1 handler installed
//   sigtimedwait        sigtimedwait() for SIGUSR1 (blocked), 60 s timeout
//   readstdin           read() one line from fd 0
//   selfcheck           nanosleep and clocknanosleep_abs of 100 ms, then
//                       sigtimedwait and pause woken by a forked child, then
//                       readstdin through a pipe; prints "SELFCHECK OK"
//
// It prints "BLOCKING <mode>" right before the call and one result line after:
//   WOKE nanosleep rc=0 errno=0 slept_ms=<n> want_ms=<MS>
//   WOKE clocknanosleep_abs rc=0 errno=0 slept_ms=<n> want_ms=<MS> deadline_ok=1
//   PAUSE returned errno=EINTR handler=1
//   GOT sig=10 code=<si_code> errno=0
//   READ <line>            (READ EOF / READ ERR errno=<n>)
// then exits 0. A sleep is correct when rc=0, errno=0 and slept_ms >= want_ms.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_handler;

static void on_usr1(int sig) {
	(void)sig;
	g_handler++;
}

static long now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static const char *errname(int e) {
	switch (e) {
	case 0: return "0";
	case EINTR: return "EINTR";
	case EAGAIN: return "EAGAIN";
	case EINVAL: return "EINVAL";
	case EFAULT: return "EFAULT";
	default: {
		static char buf[32];
		snprintf(buf, sizeof buf, "%d", e);
		return buf;
	}
	}
}

static void blocking(const char *mode) {
	printf("BLOCKING %s\n", mode);
	fflush(stdout);
}

static int do_nanosleep(long ms) {
	struct timespec req = {ms / 1000, (ms % 1000) * 1000000L}, rem = {0, 0};
	long t0 = now_ms();
	blocking("nanosleep");
	int rc = nanosleep(&req, &rem);
	int e = rc ? errno : 0;
	long slept = now_ms() - t0;
	printf("WOKE nanosleep rc=%d errno=%d slept_ms=%ld want_ms=%ld\n", rc, e, slept, ms);
	fflush(stdout);
	return rc == 0 && slept >= ms;
}

static int do_clocknanosleep_abs(long ms) {
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	long t0 = now_ms();
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	blocking("clocknanosleep_abs");
	// clock_nanosleep returns the error number instead of setting errno.
	int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL);
	struct timespec end;
	clock_gettime(CLOCK_MONOTONIC, &end);
	int ok = end.tv_sec > deadline.tv_sec ||
	         (end.tv_sec == deadline.tv_sec && end.tv_nsec >= deadline.tv_nsec);
	long slept = now_ms() - t0;
	printf("WOKE clocknanosleep_abs rc=%d errno=%d slept_ms=%ld want_ms=%ld deadline_ok=%d\n",
	       rc, rc, slept, ms, ok);
	fflush(stdout);
	return rc == 0 && ok && slept >= ms;
}

static void install_usr1(void) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0) {
		perror("sigaction");
		exit(1);
	}
}

static int do_pause(void) {
	install_usr1();
	blocking("pause");
	pause(); // always -1
	int e = errno;
	printf("PAUSE returned errno=%s handler=%d\n", errname(e), (int)g_handler);
	fflush(stdout);
	return e == EINTR && g_handler == 1;
}

static int do_sigtimedwait(void) {
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
		perror("sigprocmask");
		exit(1);
	}
	struct timespec timeout = {60, 0};
	siginfo_t info;
	memset(&info, 0, sizeof info);
	blocking("sigtimedwait");
	int sig = sigtimedwait(&set, &info, &timeout);
	int e = sig < 0 ? errno : 0;
	printf("GOT sig=%d code=%d errno=%s\n", sig, info.si_code, errname(e));
	fflush(stdout);
	return sig == SIGUSR1;
}

static const char *do_readstdin(void) {
	static char line[4096];
	size_t n = 0;
	blocking("readstdin");
	for (;;) {
		ssize_t r = read(0, line + n, sizeof line - 1 - n);
		if (r < 0) {
			printf("READ ERR errno=%s\n", errname(errno));
			fflush(stdout);
			return NULL;
		}
		if (r == 0) {
			if (n == 0) {
				printf("READ EOF\n");
				fflush(stdout);
				return NULL;
			}
		}
		n += (size_t)r;
		line[n] = 0;
		char *nl = strchr(line, '\n');
		if (nl != NULL || r == 0 || n == sizeof line - 1) {
			if (nl != NULL)
				*nl = 0;
			printf("READ %s\n", line);
			fflush(stdout);
			return line;
		}
	}
}

// kick forks a child that sends sig to us after ms milliseconds.
static pid_t kick(int sig, long ms) {
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		kill(parent, sig);
		_exit(0);
	}
	return pid;
}

static int selfcheck(void) {
	int fails = 0;
	char buf[256];
	fails += !do_nanosleep(100);
	fails += !do_clocknanosleep_abs(100);
	pid_t c = kick(SIGUSR1, 100);
	fails += !do_sigtimedwait();
	waitpid(c, NULL, 0);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	c = kick(SIGUSR1, 100);
	fails += !do_pause();
	waitpid(c, NULL, 0);
	int p[2];
	if (pipe(p) != 0 || dup2(p[0], 0) < 0)
		return 1;
	snprintf(buf, sizeof buf, "selfcheck line\n");
	if (write(p[1], buf, strlen(buf)) != (ssize_t)strlen(buf))
		fails++;
	const char *got = do_readstdin();
	fails += got == NULL || strcmp(got, "selfcheck line") != 0;
	printf(fails ? "SELFCHECK BAD %d failures\n" : "SELFCHECK OK\n", fails);
	fflush(stdout);
	return fails != 0;
}

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: blocking MODE [MS]\n");
		return 2;
	}
	long ms = argc > 2 ? atol(argv[2]) : 3000;
	const char *mode = argv[1];
	// The result line says whether it went right; the exit status is 0 either way.
	if (strcmp(mode, "nanosleep") == 0)
		do_nanosleep(ms);
	else if (strcmp(mode, "clocknanosleep_abs") == 0)
		do_clocknanosleep_abs(ms);
	else if (strcmp(mode, "pause") == 0)
		do_pause();
	else if (strcmp(mode, "sigtimedwait") == 0)
		do_sigtimedwait();
	else if (strcmp(mode, "readstdin") == 0)
		do_readstdin();
	else if (strcmp(mode, "selfcheck") == 0)
		return selfcheck();
	else {
		fprintf(stderr, "blocking: unknown mode %s\n", mode);
		return 2;
	}
	return 0;
}
