// Write-fault cost probe for BenchmarkWriteFault: times the first write to
// each of N pages, in one of two modes:
//
//   faults fresh N ROUNDS   each round: mmap N fresh anonymous pages, write
//                           one byte per page (a missing-page fault each),
//                           munmap
//   faults wp N ROUNDS      populate N pages once and register them with a
//                           userfaultfd in async write-protect mode (as
//                           crbpf's pre-copy does); each round: write-protect
//                           all, then write one byte per page (a
//                           write-protect fault each, resolved by the kernel)
//
// Protocol: prints "ready", waits for a line on stdin, runs, prints
// "ns_per_page=X baseline=Y" (X: median over rounds of the time per faulting
// write; Y: the same loop over pages already writable, no fault), then
// exits at stdin EOF. Times are this thread's CPU time, not wall time.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* CPU time of this thread (user + system, page faults included), so that
 * time spent preempted by other work on a busy machine does not count. */
static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double touch(char *p, long n, long pg, int round)
{
	double t0 = now();

	for (long i = 0; i < n; i++)
		((volatile char *)p)[i * pg] = (char)(i + round);
	return (now() - t0) / n;
}

int main(int argc, char **argv)
{
	char line[64];
	long pg = sysconf(_SC_PAGESIZE);

	if (argc != 4)
		return 2;
	int wp = strcmp(argv[1], "wp") == 0;
	long n = atol(argv[2]);
	int rounds = atoi(argv[3]);
	double *ns = calloc(rounds, sizeof(*ns));
	char *p = NULL;
	int uffd = -1;

	if (wp) {
		p = mmap(NULL, n * pg, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (p == MAP_FAILED)
			die("mmap");
		madvise(p, n * pg, MADV_NOHUGEPAGE);
		uffd = syscall(SYS_userfaultfd,
			       O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
		if (uffd < 0)
			die("userfaultfd");
		struct uffdio_api api = {
			.api = UFFD_API,
			.features = UFFD_FEATURE_WP_ASYNC |
				    UFFD_FEATURE_WP_UNPOPULATED,
		};
		if (ioctl(uffd, UFFDIO_API, &api))
			die("UFFDIO_API (WP_ASYNC)");
		struct uffdio_register reg = {
			.range = { .start = (unsigned long)p, .len = n * pg },
			.mode = UFFDIO_REGISTER_MODE_WP,
		};
		if (ioctl(uffd, UFFDIO_REGISTER, &reg))
			die("UFFDIO_REGISTER");
	}

	setvbuf(stdout, NULL, _IONBF, 0);
	setvbuf(stdin, NULL, _IONBF, 0);
	printf("ready\n");
	if (!fgets(line, sizeof(line), stdin))
		return 1;

	double base = 0;
	for (int r = 0; r < rounds; r++) {
		if (wp) {
			struct uffdio_writeprotect w = {
				.range = { .start = (unsigned long)p,
					   .len = n * pg },
				.mode = UFFDIO_WRITEPROTECT_MODE_WP,
			};
			if (ioctl(uffd, UFFDIO_WRITEPROTECT, &w))
				die("UFFDIO_WRITEPROTECT");
		} else {
			p = mmap(NULL, n * pg, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				die("mmap");
			madvise(p, n * pg, MADV_NOHUGEPAGE);
		}
		ns[r] = touch(p, n, pg, r);
		base += touch(p, n, pg, r + 1) / rounds; /* no faults now */
		if (!wp && munmap(p, n * pg))
			die("munmap");
	}
	qsort(ns, rounds, sizeof(*ns), cmp);
	printf("ns_per_page=%.1f baseline=%.1f\n", ns[rounds / 2], base);
	while (fgets(line, sizeof(line), stdin))
		;
	return 0;
}
