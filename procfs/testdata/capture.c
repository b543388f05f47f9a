#define _GNU_SOURCE
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/mman.h>

static void h(int s) { (void)s; }
static void *thr(void *a) { (void)a; pause(); return NULL; }
static void dump(const char *name, const char *dir) {
	char src[64], dst[256], buf[65536];
	snprintf(src, sizeof src, "/proc/self/%s", name);
	snprintf(dst, sizeof dst, "%s/%s", dir, name);
	FILE *in = fopen(src, "r"), *out = fopen(dst, "w");
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
	fclose(in); fclose(out);
}
int main(int argc, char **argv) {
	pthread_t t;
	pthread_create(&t, NULL, thr, NULL);
	umask(027);
	prctl(PR_SET_NAME, "cap ) (x");
	signal(SIGUSR1, h); signal(SIGPIPE, SIG_IGN);
	sigset_t ss; sigemptyset(&ss); sigaddset(&ss, SIGUSR2); sigaddset(&ss, SIGRTMIN + 3);
	pthread_sigmask(SIG_BLOCK, &ss, NULL);
	raise(SIGUSR2);
	struct sigevent ev; timer_t id;
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_SIGNAL; ev.sigev_signo = SIGUSR1; ev.sigev_value.sival_ptr = (void *)0x7fffdeadbeef;
	timer_create(CLOCK_MONOTONIC, &ev, &id);
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_NONE;
	timer_create(CLOCK_REALTIME, &ev, &id);
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_THREAD_ID; ev.sigev_signo = SIGRTMIN + 1; ev._sigev_un._tid = gettid(); ev.sigev_value.sival_int = 42;
	timer_create(CLOCK_BOOTTIME, &ev, &id);
	memset(&ev, 0, sizeof ev); /* raw SIGEV_THREAD, bypassing glibc */
	ev.sigev_notify = SIGEV_THREAD; ev.sigev_signo = SIGALRM;
	int kid; syscall(SYS_timer_create, CLOCK_PROCESS_CPUTIME_ID, &ev, &kid);
	void *p = mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
	mprotect(p, 4096, PROT_NONE);
	dump("stat", argv[1]); dump("status", argv[1]); dump("timers", argv[1]); dump("maps", argv[1]); dump("auxv", argv[1]);
	return 0;
}
