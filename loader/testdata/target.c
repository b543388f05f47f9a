// Test target for package loader: changes its address space in known ways
// and reports the addresses, so the test can match them with the events.
//
// Protocol (one line each way):
//   target -> "ready"           after start-up; the test tracks the pid now
//   test   -> any line          go
//   target -> "mmap=ADDR pages=N brk0=ADDR brk1=ADDR zero=ADDR"
//             after: mmap N pages, write each page once, mprotect them
//             read-only, madvise(MADV_DONTNEED), munmap, brk(brk0 + 4
//             pages), and read() from /dev/zero into 8 fresh pages (kernel
//             write faults)
//   target exits when its stdin reaches EOF.
// Between "ready" and its report it makes exactly 7 address-space calls:
// mmap, mprotect, madvise, munmap, brk, brk, mmap.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGES 64
#define ZERO_PAGES 8

static void die(const char *what)
{
	perror(what);
	exit(1);
}

int main(void)
{
	char line[64];
	long pg = sysconf(_SC_PAGESIZE);

	/* Unbuffered stdio: no malloc (hence no brk) after "ready" but ours. */
	setvbuf(stdout, NULL, _IONBF, 0);
	setvbuf(stdin, NULL, _IONBF, 0);
	printf("ready\n");
	if (!fgets(line, sizeof(line), stdin))
		return 1;

	char *p = mmap(NULL, PAGES * pg, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	for (long i = 0; i < PAGES; i++)
		((volatile char *)p)[i * pg] = (char)i;
	if (mprotect(p, PAGES * pg, PROT_READ))
		die("mprotect");
	if (madvise(p, PAGES * pg, MADV_DONTNEED))
		die("madvise");
	if (munmap(p, PAGES * pg))
		die("munmap");

	unsigned long brk0 = syscall(SYS_brk, 0);
	unsigned long brk1 = syscall(SYS_brk, brk0 + 4 * pg);

	char *z = mmap(NULL, ZERO_PAGES * pg, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (z == MAP_FAILED)
		die("mmap");
	int fd = open("/dev/zero", O_RDONLY);
	if (fd < 0)
		die("open /dev/zero");
	if (read(fd, z, ZERO_PAGES * pg) != ZERO_PAGES * pg)
		die("read /dev/zero");
	close(fd);

	printf("mmap=%p pages=%d brk0=%#lx brk1=%#lx zero=%p\n", (void *)p,
	       PAGES, brk0, brk1, (void *)z);
	while (fgets(line, sizeof(line), stdin))
		;
	return 0;
}
