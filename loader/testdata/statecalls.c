// Test target for package loader: makes one syscall per command, so that the
// test can see which ones move its state-change count.
//
// Protocol (one line each way):
//   target -> "ready"     after start-up (and again after an exec command)
//   test   -> NAME        make the call NAME (see main)
//   target -> "ok"        done (not for exec commands: "ready" follows)
//   target exits when its stdin reaches EOF.
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void handler(int sig)
{
	(void)sig;
}

static int cleared; /* set_tid_address target */

int main(int argc, char **argv)
{
	char line[64];
	timer_t timer = 0;

	(void)argc;
	setvbuf(stdout, NULL, _IONBF, 0);
	setvbuf(stdin, NULL, _IONBF, 0);
	printf("ready\n");
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = 0;
		if (!strcmp(line, "rt_sigaction")) {
			struct sigaction sa = {.sa_handler = handler};
			if (sigaction(SIGUSR1, &sa, NULL))
				die("sigaction");
		} else if (!strcmp(line, "sigaltstack")) {
			stack_t old;
			if (sigaltstack(NULL, &old))
				die("sigaltstack");
		} else if (!strcmp(line, "setitimer")) {
			struct itimerval zero = {0};
			if (setitimer(ITIMER_VIRTUAL, &zero, NULL))
				die("setitimer");
		} else if (!strcmp(line, "alarm")) {
			alarm(0);
		} else if (!strcmp(line, "timer_create")) {
			struct sigevent sev = {.sigev_notify = SIGEV_NONE};
			if (timer_create(CLOCK_MONOTONIC, &sev, &timer))
				die("timer_create");
		} else if (!strcmp(line, "timer_settime")) {
			struct itimerspec its = {.it_value = {.tv_sec = 100}};
			if (timer_settime(timer, 0, &its, NULL))
				die("timer_settime");
		} else if (!strcmp(line, "timer_delete")) {
			if (timer_delete(timer))
				die("timer_delete");
		} else if (!strcmp(line, "set_tid_address")) {
			syscall(SYS_set_tid_address, &cleared);
		} else if (!strcmp(line, "brk")) {
			syscall(SYS_brk, 0);
		} else if (!strcmp(line, "execve")) {
			execv("/proc/self/exe", argv);
			die("execve");
		} else if (!strcmp(line, "execveat")) {
			syscall(SYS_execveat, AT_FDCWD, "/proc/self/exe", argv, environ, 0);
			die("execveat");
		} else if (!strcmp(line, "x32_getpid")) {
			/* An x32 syscall: ENOSYS on a kernel without the x32 ABI,
			 * but seen by sys_enter all the same. */
			syscall(SYS_getpid | 0x40000000);
		} else if (!strcmp(line, "getpid")) {
			syscall(SYS_getpid);
		} else if (!strcmp(line, "mmap")) {
			void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				die("mmap");
		} else {
			fprintf(stderr, "statecalls: unknown command %s\n", line);
			return 1;
		}
		printf("ok\n");
	}
	return 0;
}
