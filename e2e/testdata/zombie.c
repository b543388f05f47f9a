// zombie: keeps an exited, never-reaped child (a zombie) next to it.
//
// Prints "ZOMBIE <pid>" once the child has exited (it is left unreaped), then
// "TICK n" every 200 ms. On SIGUSR1 it checks, without reaping, that the
// child is still a waitable zombie and prints
// "SELFCHECK OK zombie=<pid>" or "SELFCHECK BAD <what>".
// Usage: zombie [selfcheck]   (selfcheck: check once, exit 0 if OK)
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_usr1;

static void on_usr1(int sig) {
	(void)sig;
	g_usr1 = 1;
}

static int check(pid_t child) {
	siginfo_t info;
	memset(&info, 0, sizeof info);
	// WNOWAIT: look, but leave the zombie in place.
	if (waitid(P_PID, child, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
		printf("SELFCHECK BAD waitid: %s\n", strerror(errno));
		return 0;
	}
	if (info.si_pid != child || info.si_code != CLD_EXITED || info.si_status != 7) {
		printf("SELFCHECK BAD child %d pid=%d code=%d status=%d\n", child, info.si_pid, info.si_code,
		       info.si_status);
		return 0;
	}
	printf("SELFCHECK OK zombie=%d\n", child);
	return 1;
}

int main(int argc, char **argv) {
	int self = argc > 1 && strcmp(argv[1], "selfcheck") == 0;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);

	pid_t child = fork();
	if (child < 0) {
		perror("fork");
		return 1;
	}
	if (child == 0)
		_exit(7);
	siginfo_t info;
	// Wait for the exit without reaping, so ZOMBIE is printed only once the
	// child really is a zombie.
	while (waitid(P_PID, child, &info, WEXITED | WNOWAIT) != 0 && errno == EINTR)
		;
	printf("ZOMBIE %d\n", child);
	fflush(stdout);
	if (self) {
		int ok = check(child);
		fflush(stdout);
		return ok ? 0 : 1;
	}
	for (long n = 1;; n++) {
		if (g_usr1) {
			g_usr1 = 0;
			check(child);
		}
		printf("TICK %ld\n", n);
		fflush(stdout);
		struct timespec ts = {0, 200 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}
