// shared: shared mappings whose contents must survive a restore.
//
// Usage: shared DIR [selfcheck]
//
// It creates DIR/shared.dat (4 pages) and maps it MAP_SHARED read-write,
// and maps 4 pages MAP_SHARED|MAP_ANONYMOUS. It writes "generation" g
// (starting at 1) into both:
//   file pages 0-2: "GEN <g>\n" at the start of page 0, every other byte of
//                   pages 0-2 is 'a' + g % 26; page 3 belongs to whoever
//                   writes the file on disk (the target only reads it)
//   anonymous:      word 0 = g, every other word a pattern from a seed
//                   chosen at start-up (page, word)
// It writes only through the mappings (no write(), no msync), so the file on
// disk shows generation g only if the file mapping really is shared.
//
// Output (one line each, flushed):
//   READY gen=1 file=<path>
//   on SIGUSR1: checks that both areas hold generation g, moves to g+1
//   (rewriting both) and prints
//     SHM gen=<g+1> file_ok=<0|1> anon_ok=<0|1> filemap=<perms> filepath=<path>
//       anonmap=<perms> ext=<page 3 of the file up to the first NUL or newline>
//   where perms and path come from the target's own /proc/self/maps line for
//   each area ("-" if no line starts at the area's address).
// With "selfcheck" it raises SIGUSR1 twice, also checks the file with read()
// and prints "SELFCHECK OK" or "SELFCHECK BAD <what>".
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PG 4096UL
#define PAGES 4
#define WPP (PG / 8)

static volatile sig_atomic_t g_usr1;
static unsigned char *g_file;
static uint64_t *g_anon;
static uint64_t g_seed, g_gen;
static char g_path[4096];

static void die(const char *what) {
	printf("SETUP FAILED %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(1);
}

static uint64_t mix(uint64_t a, uint64_t b) {
	uint64_t x = g_seed ^ (a * 0x9E3779B97F4A7C15ULL) ^ (b * 0xC2B2AE3D27D4EB4FULL);
	x ^= x >> 31;
	x *= 0xBF58476D1CE4E5B9ULL;
	x ^= x >> 29;
	return x;
}

static void write_gen(uint64_t g) {
	char hdr[32];
	int n = snprintf(hdr, sizeof hdr, "GEN %llu\n", (unsigned long long)g);
	memset(g_file, 'a' + (int)(g % 26), 3 * PG);
	memcpy(g_file, hdr, n); // without the NUL
	for (size_t i = 0; i < PAGES * WPP; i++)
		g_anon[i] = i == 0 ? g : mix(i / WPP, i % WPP);
}

// check_file and check_anon say whether an area holds generation g.
static int check_file(uint64_t g) {
	char hdr[32];
	int n = snprintf(hdr, sizeof hdr, "GEN %llu\n", (unsigned long long)g);
	if (memcmp(g_file, hdr, n) != 0)
		return 0;
	for (size_t i = n; i < 3 * PG; i++)
		if (g_file[i] != 'a' + g % 26)
			return 0;
	return 1;
}

static int check_anon(uint64_t g) {
	for (size_t i = 0; i < PAGES * WPP; i++)
		if (g_anon[i] != (i == 0 ? g : mix(i / WPP, i % WPP)))
			return 0;
	return 1;
}

// maps_line finds the /proc/self/maps line starting at addr and returns its
// permissions and path.
static void maps_line(void *addr, char *perms, char *path, size_t n) {
	strcpy(perms, "-");
	snprintf(path, n, "-");
	FILE *f = fopen("/proc/self/maps", "re");
	if (f == NULL)
		return;
	char line[4400];
	while (fgets(line, sizeof line, f)) {
		unsigned long start;
		char p[8];
		int off = 0;
		if (sscanf(line, "%lx-%*x %7s %*x %*x:%*x %*u%n", &start, p, &off) < 2 || start != (unsigned long)addr)
			continue;
		strcpy(perms, p);
		char *rest = line + off;
		rest += strspn(rest, " ");
		rest[strcspn(rest, "\n")] = 0;
		if (*rest)
			snprintf(path, n, "%s", rest);
		break;
	}
	fclose(f);
}

static void step(void) {
	int fok = check_file(g_gen), aok = check_anon(g_gen);
	g_gen++;
	write_gen(g_gen);
	char fperm[8], apath[4096], aperm[8], fpath[4096], ext[64];
	maps_line(g_file, fperm, fpath, sizeof fpath);
	maps_line(g_anon, aperm, apath, sizeof apath);
	size_t k = 0;
	const unsigned char *p3 = g_file + 3 * PG;
	while (k < sizeof ext - 1 && p3[k] > ' ' && p3[k] < 0x7f) {
		ext[k] = p3[k];
		k++;
	}
	ext[k] = 0;
	printf("SHM gen=%llu file_ok=%d anon_ok=%d filemap=%s filepath=%s anonmap=%s ext=%s\n",
	       (unsigned long long)g_gen, fok, aok, fperm, fpath, aperm, ext);
	fflush(stdout);
}

static void on_usr1(int sig) {
	(void)sig;
	g_usr1 = 1;
}

static int selfcheck(void) {
	for (int i = 0; i < 2; i++)
		step();
	char buf[3 * PG];
	int fd = open(g_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pread(fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf) {
		printf("SELFCHECK BAD read file: %s\n", strerror(errno));
		return 1;
	}
	close(fd);
	if (memcmp(buf, g_file, sizeof buf) != 0 || strncmp(buf, "GEN 3\n", 6) != 0) {
		printf("SELFCHECK BAD file on disk is not generation 3\n");
		return 1;
	}
	if (!check_file(3) || !check_anon(3)) {
		printf("SELFCHECK BAD mappings\n");
		return 1;
	}
	printf("SELFCHECK OK\n");
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: shared DIR [selfcheck]\n");
		return 2;
	}
	int self = argc > 2 && strcmp(argv[2], "selfcheck") == 0;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	g_seed = 0x5eed ^ ((uint64_t)getpid() << 32) ^ (uint64_t)now.tv_nsec;

	snprintf(g_path, sizeof g_path, "%s/shared.dat", argv[1]);
	int fd = open(g_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, PAGES * PG) != 0)
		die("create file");
	g_file = mmap(NULL, PAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (g_file == MAP_FAILED)
		die("mmap file");
	close(fd); // only the mapping refers to the file
	g_anon = mmap(NULL, PAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (g_anon == MAP_FAILED)
		die("mmap anon");

	g_gen = 1;
	write_gen(g_gen);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		die("sigaction");
	printf("READY gen=1 file=%s\n", g_path);
	fflush(stdout);
	if (self)
		return selfcheck();

	sigset_t usr1, wait;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &usr1, &wait) != 0)
		die("sigprocmask");
	sigdelset(&wait, SIGUSR1);
	for (;;) {
		if (g_usr1) {
			g_usr1 = 0;
			step();
		}
		sigsuspend(&wait);
	}
}
