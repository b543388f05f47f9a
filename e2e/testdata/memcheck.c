// memcheck: a target whose whole address space is self-verifying.
//
// Usage: memcheck [MIB [DIR [selfcheck]]]
//   MIB  size of the big heap buffer in MiB (default 256)
//   DIR  directory for the two files it maps (default ".")
//
// It sets up, each filled with a pattern derived from (seed, region, page):
//   heap    MIB MiB from posix_memalign; page 0 is the "tick page", rewritten
//           on every tick from the tick number
//   small   512 small malloc chunks (brk heap)
//   ro      16 anonymous pages made PROT_READ with mprotect
//   guard   4 PROT_NONE pages (checked through /proc/self/maps only)
//   sparse  16 anonymous pages: even pages written, odd pages never touched,
//           page 2 written then MADV_DONTNEED (must read back as zero)
//   fpriv   32-page file mapped MAP_PRIVATE read-write; pages 1, 7 and 20 are
//           modified in memory, pages 24-31 are never touched before a verify;
//           the file itself must stay unchanged
//   fro     8-page file mapped MAP_PRIVATE read-only
//   shm     8 pages MAP_SHARED|MAP_ANONYMOUS
//   data    a .data array, bss a .bss array, stack an array on main's stack
// and keeps a 64-bit checksum of every region.
//
// Output (one line each, flushed):
//   READY pages=<n> heap_mib=<m> seed=<hex>   when set up
//   TICK <n>                                   every 100 ms; each tick rewrites the tick page
//   VERIFY OK <n> pages | VERIFY BAD <what>    on SIGUSR1
// With "selfcheck" it verifies, then corrupts one byte of every region in turn
// (expecting VERIFY to notice and name it), repairs it, verifies again and
// prints "SELFCHECK OK corruptions_detected=<n>", then exits 0.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define PG 4096UL
#define WPP (PG / 8) // 64-bit words per page

enum region {
	R_HEAP = 1, R_TICK, R_SMALL, R_RO, R_SPARSE, R_FILE, R_FMOD, R_FRO,
	R_SHM, R_DATA, R_BSS, R_STACK,
};

#define NSMALL 512
#define SMALLWORDS 12
#define RO_PAGES 16
#define GUARD_PAGES 4
#define SPARSE_PAGES 16
#define FPRIV_PAGES 32
#define FRO_PAGES 8
#define SHM_PAGES 8
#define BSS_PAGES 8
#define STACK_WORDS (4 * WPP)

static const int fmod_pages[] = {1, 7, 20};
#define FPRIV_UNTOUCHED_FROM 24

// .data: initialised at compile time, overwritten with the pattern at setup.
static uint64_t g_data[WPP] = {0x0123456789abcdefULL, 1, 2, 3};
static uint64_t g_seed = 0x5eed5eed5eed5eedULL;
// .bss
static uint64_t g_bss[BSS_PAGES * WPP];
static uint64_t *g_small[NSMALL];
static uint64_t g_tick;      // the tick page holds the pattern of this tick
static uint64_t g_tick_sum;  // checksum of the tick page for g_tick
static volatile sig_atomic_t g_usr1;

struct sums {
	uint64_t heap, small, ro, sparse, fpriv, fro, shm, data, bss, stack;
};
static struct sums g_sums;

static uint64_t *g_heap;
static size_t g_heap_pages;
static uint64_t *g_ro, *g_sparse, *g_fpriv, *g_fro, *g_shm;
static char *g_guard;
static char g_fpriv_path[4096], g_fro_path[4096];

static char g_bad[512]; // first failure of the last verify()
static long g_nbad;

static uint64_t mix(uint64_t seed, uint64_t a, uint64_t b) {
	uint64_t x = seed ^ (a * 0x9E3779B97F4A7C15ULL) ^ (b * 0xC2B2AE3D27D4EB4FULL);
	x ^= x >> 30;
	x *= 0xBF58476D1CE4E5B9ULL;
	x ^= x >> 27;
	x *= 0x94D049BB133111EBULL;
	x ^= x >> 31;
	return x;
}

static uint64_t pat(int region, uint64_t page, uint64_t word) {
	return mix(g_seed ^ ((uint64_t)region << 56), page, word);
}

static void fill(uint64_t *p, size_t npages, int region, uint64_t first) {
	for (size_t i = 0; i < npages; i++)
		for (size_t j = 0; j < WPP; j++)
			p[i * WPP + j] = pat(region, first + i, j);
}

static uint64_t cksum(const void *p, size_t len) {
	const uint64_t *w = p;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len / 8; i++) {
		h ^= w[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void bad(const char *fmt, ...) {
	if (g_nbad++ == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(g_bad, sizeof g_bad, fmt, ap);
		va_end(ap);
	}
}

static void die(const char *what) {
	printf("SETUP FAILED %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(1);
}

// check_pages compares npages of p with the region pattern; returns bad pages.
static long check_pages(const char *name, const uint64_t *p, size_t npages, int region, uint64_t first) {
	long nbad = 0;
	for (size_t i = 0; i < npages; i++) {
		for (size_t j = 0; j < WPP; j++) {
			uint64_t want = pat(region, first + i, j);
			if (p[i * WPP + j] != want) {
				if (nbad == 0)
					bad("%s page %zu word %zu got %#llx want %#llx", name, (size_t)first + i, j,
					    (unsigned long long)p[i * WPP + j], (unsigned long long)want);
				nbad++;
				break;
			}
		}
	}
	return nbad;
}

static int is_fmod(size_t page) {
	for (size_t k = 0; k < sizeof fmod_pages / sizeof fmod_pages[0]; k++)
		if ((size_t)fmod_pages[k] == page)
			return 1;
	return 0;
}

// check_vma finds the /proc/self/maps line that covers [addr, addr+len) and
// compares its permissions (and, if name is set, that its path ends in name).
static void check_vma(const char *what, const void *addr, size_t len, const char *perms, const char *name) {
	FILE *f = fopen("/proc/self/maps", "r");
	if (f == NULL) {
		bad("%s: open maps: %s", what, strerror(errno));
		return;
	}
	char line[4096];
	int found = 0;
	uintptr_t a = (uintptr_t)addr;
	while (fgets(line, sizeof line, f)) {
		unsigned long start, end;
		char p[8];
		int off = 0;
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s%n", &start, &end, p, &off) < 3)
			continue;
		if (start <= a && a < end) {
			found = 1;
			if (end < a + len)
				bad("%s: vma %lx-%lx does not cover %zu bytes", what, start, end, len);
			else if (strcmp(p, perms) != 0)
				bad("%s perms %s want %s", what, p, perms);
			else if (name != NULL) {
				line[strcspn(line, "\n")] = 0;
				char *path = line + off;
				while (*path == ' ')
					path++;
				size_t pl = strlen(path), nl = strlen(name);
				if (pl < nl || strcmp(path + pl - nl, name) != 0)
					bad("%s mapped from '%s' want '%s'", what, path, name);
			}
			break;
		}
	}
	fclose(f);
	if (!found)
		bad("%s: no mapping at %p", what, addr);
}

// check_file compares the on-disk file with the pattern, and the given
// mapping pages (those not in skip) with the file's bytes.
static void check_file(const char *what, const char *path, int region, size_t npages,
                       const uint64_t *map, int skip_fmod) {
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		bad("%s: open %s: %s", what, path, strerror(errno));
		return;
	}
	static uint64_t buf[WPP];
	for (size_t i = 0; i < npages; i++) {
		if (pread(fd, buf, PG, (off_t)(i * PG)) != (ssize_t)PG) {
			bad("%s: short read of %s page %zu", what, path, i);
			break;
		}
		int ok = 1;
		for (size_t j = 0; j < WPP; j++)
			if (buf[j] != pat(region, i, j)) {
				bad("%s file %s page %zu changed on disk", what, path, i);
				ok = 0;
				break;
			}
		if (!ok)
			break;
		if (skip_fmod && is_fmod(i))
			continue;
		if (memcmp(buf, map + i * WPP, PG) != 0) {
			bad("%s page %zu differs from the file", what, i);
			break;
		}
	}
	close(fd);
}

// verify checks everything and returns the number of pages checked; g_nbad
// and g_bad say what is wrong.
static long verify(const uint64_t *stack) {
	g_nbad = 0;
	g_bad[0] = 0;
	long pages = 0;

	// heap: page 0 is the tick page
	check_pages("heap", g_heap + WPP, g_heap_pages - 1, R_HEAP, 1);
	for (size_t j = 0; j < WPP; j++)
		if (g_heap[j] != pat(R_TICK, g_tick, j)) {
			bad("heap tick page word %zu (tick %llu)", j, (unsigned long long)g_tick);
			break;
		}
	if (cksum(g_heap, PG) != g_tick_sum)
		bad("heap tick page checksum (tick %llu)", (unsigned long long)g_tick);
	if (cksum(g_heap + WPP, (g_heap_pages - 1) * PG) != g_sums.heap)
		bad("heap checksum");
	pages += g_heap_pages;

	for (int k = 0; k < NSMALL; k++)
		for (int j = 0; j < SMALLWORDS; j++)
			if (g_small[k][j] != pat(R_SMALL, k, j)) {
				bad("small chunk %d word %d", k, j);
				k = NSMALL;
				break;
			}
	uint64_t s = 0;
	for (int k = 0; k < NSMALL; k++)
		s = s * 31 + cksum(g_small[k], SMALLWORDS * 8);
	if (s != g_sums.small)
		bad("small checksum");

	check_pages("ro", g_ro, RO_PAGES, R_RO, 0);
	if (cksum(g_ro, RO_PAGES * PG) != g_sums.ro)
		bad("ro checksum");
	check_vma("ro", g_ro, RO_PAGES * PG, "r--p", NULL);
	pages += RO_PAGES;

	check_vma("guard", g_guard, GUARD_PAGES * PG, "---p", NULL);

	for (size_t i = 0; i < SPARSE_PAGES; i++) {
		if (i % 2 == 0 && i != 2) {
			check_pages("sparse", g_sparse + i * WPP, 1, R_SPARSE, i);
			continue;
		}
		for (size_t j = 0; j < WPP; j++)
			if (g_sparse[i * WPP + j] != 0) {
				bad("sparse page %zu word %zu not zero", i, j);
				break;
			}
	}
	if (cksum(g_sparse, SPARSE_PAGES * PG) != g_sums.sparse)
		bad("sparse checksum");
	check_vma("sparse", g_sparse, SPARSE_PAGES * PG, "rw-p", NULL);
	pages += SPARSE_PAGES;

	for (size_t i = 0; i < FPRIV_PAGES; i++) {
		if (is_fmod(i))
			check_pages("fpriv modified", g_fpriv + i * WPP, 1, R_FMOD, i);
		else
			check_pages("fpriv", g_fpriv + i * WPP, 1, R_FILE, i);
	}
	check_file("fpriv", g_fpriv_path, R_FILE, FPRIV_PAGES, g_fpriv, 1);
	if (cksum(g_fpriv, FPRIV_PAGES * PG) != g_sums.fpriv)
		bad("fpriv checksum");
	check_vma("fpriv", g_fpriv, FPRIV_PAGES * PG, "rw-p", strrchr(g_fpriv_path, '/'));
	pages += FPRIV_PAGES;

	check_pages("fro", g_fro, FRO_PAGES, R_FRO, 0);
	check_file("fro", g_fro_path, R_FRO, FRO_PAGES, g_fro, 0);
	if (cksum(g_fro, FRO_PAGES * PG) != g_sums.fro)
		bad("fro checksum");
	check_vma("fro", g_fro, FRO_PAGES * PG, "r--p", strrchr(g_fro_path, '/'));
	pages += FRO_PAGES;

	check_pages("shm", g_shm, SHM_PAGES, R_SHM, 0);
	if (cksum(g_shm, SHM_PAGES * PG) != g_sums.shm)
		bad("shm checksum");
	check_vma("shm", g_shm, SHM_PAGES * PG, "rw-s", NULL);
	pages += SHM_PAGES;

	check_pages("data", g_data, 1, R_DATA, 0);
	if (cksum(g_data, sizeof g_data) != g_sums.data)
		bad("data checksum");
	check_pages("bss", g_bss, BSS_PAGES, R_BSS, 0);
	if (cksum(g_bss, sizeof g_bss) != g_sums.bss)
		bad("bss checksum");
	pages += 1 + BSS_PAGES;

	for (size_t j = 0; j < STACK_WORDS; j++)
		if (stack[j] != pat(R_STACK, j / WPP, j % WPP)) {
			bad("stack word %zu", j);
			break;
		}
	if (cksum(stack, STACK_WORDS * 8) != g_sums.stack)
		bad("stack checksum");
	pages += STACK_WORDS / WPP;
	return pages;
}

static void report(const uint64_t *stack) {
	long pages = verify(stack);
	if (g_nbad == 0)
		printf("VERIFY OK %ld pages\n", pages);
	else
		printf("VERIFY BAD %s (%ld problems)\n", g_bad, g_nbad);
	fflush(stdout);
}

static void tick(void) {
	g_tick++;
	fill(g_heap, 1, R_TICK, g_tick);
	g_tick_sum = cksum(g_heap, PG);
}

static void on_usr1(int sig) {
	(void)sig;
	g_usr1 = 1;
}

static void *map_file(const char *dir, const char *suffix, char *path, int region, size_t npages, int prot) {
	snprintf(path, 4096, "%s/memcheck-%d-%s.dat", dir, (int)getpid(), suffix);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die(path);
	static uint64_t buf[WPP];
	for (size_t i = 0; i < npages; i++) {
		for (size_t j = 0; j < WPP; j++)
			buf[j] = pat(region, i, j);
		if (write(fd, buf, PG) != (ssize_t)PG)
			die("write file");
	}
	if (fsync(fd) != 0)
		die("fsync");
	close(fd);
	fd = open(path, O_RDONLY | O_CLOEXEC); // MAP_PRIVATE needs no write access
	if (fd < 0)
		die(path);
	void *p = mmap(NULL, npages * PG, prot, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		die("mmap file");
	close(fd); // the mapping keeps the file; no fd stays open
	return p;
}

static void *map_anon(size_t npages, int prot, int flags) {
	void *p = mmap(NULL, npages * PG, prot, flags | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap anon");
	return p;
}

// corrupt flips one byte, runs verify and checks that the failure names want.
static int corrupt(const char *want, volatile unsigned char *p, const uint64_t *stack) {
	*p ^= 0x40;
	verify(stack);
	int ok = g_nbad > 0 && strstr(g_bad, want) != NULL;
	if (!ok)
		printf("SELFCHECK BAD corrupting %s gave: %s\n", want, g_nbad ? g_bad : "no error");
	*p ^= 0x40;
	return ok;
}

static int selfcheck(uint64_t *stack) {
	int n = 0, fails = 0;
#define CORRUPT(want, ptr) (corrupt(want, (volatile unsigned char *)(ptr), stack) ? n++ : fails++)
	CORRUPT("heap page 5 word 2", (char *)g_heap + 5 * PG + 17);
	CORRUPT("heap tick page word 12", (char *)g_heap + 100);
	CORRUPT("small chunk 256 word 0", (char *)g_small[NSMALL / 2] + 3);
	CORRUPT("sparse page 4 word 1", (char *)g_sparse + 4 * PG + 9);
	CORRUPT("sparse page 3 word 1 not zero", (char *)g_sparse + 3 * PG + 9);
	CORRUPT("fpriv page 3 word 0", (char *)g_fpriv + 3 * PG + 1);
	CORRUPT("fpriv page 28 word 0", (char *)g_fpriv + 28 * PG + 1);
	CORRUPT("fpriv modified page 7 word 0", (char *)g_fpriv + 7 * PG + 1);
	CORRUPT("shm page 2", (char *)g_shm + 2 * PG);
	CORRUPT("data page 0 word 5", (char *)g_data + 40);
	CORRUPT("bss page 3 word 1", (char *)g_bss + 3 * PG + 8);
	CORRUPT("stack word 125", (char *)stack + 1000);

	if (mprotect(g_ro, RO_PAGES * PG, PROT_READ | PROT_WRITE) != 0)
		die("mprotect ro");
	CORRUPT("ro page 2", (char *)g_ro + 2 * PG);
	verify(stack); // rw-p alone is wrong
	if (g_nbad > 0 && strstr(g_bad, "ro perms rw-p")) n++;
	else { fails++; printf("SELFCHECK BAD writable ro area not detected: %s\n", g_bad); }
	if (mprotect(g_ro, RO_PAGES * PG, PROT_READ) != 0)
		die("mprotect ro");
	if (mprotect(g_fro, FRO_PAGES * PG, PROT_READ | PROT_WRITE) != 0)
		die("mprotect fro");
	CORRUPT("fro page 1", (char *)g_fro + PG);
	if (mprotect(g_fro, FRO_PAGES * PG, PROT_READ) != 0)
		die("mprotect fro");
	if (mprotect(g_guard, PG, PROT_READ) != 0)
		die("mprotect guard");
	verify(stack);
	if (g_nbad > 0 && strstr(g_bad, "guard")) n++;
	else { fails++; printf("SELFCHECK BAD readable guard not detected: %s\n", g_bad); }
	if (mprotect(g_guard, PG, PROT_NONE) != 0)
		die("mprotect guard");

	// the file under the private mapping must not change
	int fd = open(g_fpriv_path, O_RDWR | O_CLOEXEC);
	unsigned char c;
	if (fd < 0 || pread(fd, &c, 1, 9 * PG) != 1)
		die("open fpriv");
	c ^= 1;
	pwrite(fd, &c, 1, 9 * PG);
	verify(stack);
	// an unmodified MAP_PRIVATE page shows the new file bytes, so the
	// mapping check may fire before the on-disk check
	if (g_nbad > 0 && (strstr(g_bad, "fpriv page 9") || strstr(g_bad, "changed on disk"))) n++;
	else { fails++; printf("SELFCHECK BAD changed file not detected: %s\n", g_bad); }
	c ^= 1;
	pwrite(fd, &c, 1, 9 * PG);
	close(fd);

	// a tick keeps everything consistent
	tick();
	report(stack);
	if (g_nbad != 0)
		fails++;
	printf(fails ? "SELFCHECK BAD %d failures\n" : "SELFCHECK OK corruptions_detected=%d\n", fails ? fails : n);
	fflush(stdout);
	return fails ? 1 : 0;
}

int main(int argc, char **argv) {
	long mib = argc > 1 ? atol(argv[1]) : 256;
	const char *dir = argc > 2 ? argv[2] : ".";
	int self = argc > 3 && strcmp(argv[3], "selfcheck") == 0;
	uint64_t stack[STACK_WORDS];
	if (mib < 1)
		mib = 1;

	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	g_seed = mix(g_seed, (uint64_t)getpid(), (uint64_t)now.tv_nsec);

	g_heap_pages = (size_t)mib * 256;
	void *h;
	if (posix_memalign(&h, PG, g_heap_pages * PG) != 0)
		die("posix_memalign");
	g_heap = h;
	fill(g_heap + WPP, g_heap_pages - 1, R_HEAP, 1);
	g_sums.heap = cksum(g_heap + WPP, (g_heap_pages - 1) * PG);

	uint64_t s = 0;
	for (int k = 0; k < NSMALL; k++) {
		g_small[k] = malloc(SMALLWORDS * 8);
		if (g_small[k] == NULL)
			die("malloc");
		for (int j = 0; j < SMALLWORDS; j++)
			g_small[k][j] = pat(R_SMALL, k, j);
		s = s * 31 + cksum(g_small[k], SMALLWORDS * 8);
	}
	g_sums.small = s;

	// guard and ro are mapped as one area, then split by mprotect
	char *area = map_anon(GUARD_PAGES + RO_PAGES, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	g_guard = area;
	g_ro = (uint64_t *)(area + GUARD_PAGES * PG);
	fill(g_ro, RO_PAGES, R_RO, 0);
	g_sums.ro = cksum(g_ro, RO_PAGES * PG);
	if (mprotect(g_ro, RO_PAGES * PG, PROT_READ) != 0 || mprotect(g_guard, GUARD_PAGES * PG, PROT_NONE) != 0)
		die("mprotect");

	g_sparse = map_anon(SPARSE_PAGES, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	for (size_t i = 0; i < SPARSE_PAGES; i += 2)
		fill(g_sparse + i * WPP, 1, R_SPARSE, i);
	if (madvise((char *)g_sparse + 2 * PG, PG, MADV_DONTNEED) != 0)
		die("madvise");
	g_sums.sparse = cksum(g_sparse, SPARSE_PAGES * PG);

	g_fpriv = map_file(dir, "priv", g_fpriv_path, R_FILE, FPRIV_PAGES, PROT_READ | PROT_WRITE);
	for (size_t k = 0; k < sizeof fmod_pages / sizeof fmod_pages[0]; k++)
		fill(g_fpriv + fmod_pages[k] * WPP, 1, R_FMOD, fmod_pages[k]);
	// touch (read) some unmodified pages, leave FPRIV_UNTOUCHED_FROM.. alone
	volatile uint64_t sink = 0;
	for (size_t i = 0; i < FPRIV_UNTOUCHED_FROM; i++)
		sink += g_fpriv[i * WPP];
	(void)sink;
	{
		// checksum of what the mapping must hold, computed without touching it
		static uint64_t img[FPRIV_PAGES * WPP];
		fill(img, FPRIV_PAGES, R_FILE, 0);
		for (size_t k = 0; k < sizeof fmod_pages / sizeof fmod_pages[0]; k++)
			fill(img + fmod_pages[k] * WPP, 1, R_FMOD, fmod_pages[k]);
		g_sums.fpriv = cksum(img, sizeof img);
	}

	g_fro = map_file(dir, "ro", g_fro_path, R_FRO, FRO_PAGES, PROT_READ);
	g_sums.fro = cksum(g_fro, FRO_PAGES * PG);

	g_shm = map_anon(SHM_PAGES, PROT_READ | PROT_WRITE, MAP_SHARED);
	fill(g_shm, SHM_PAGES, R_SHM, 0);
	g_sums.shm = cksum(g_shm, SHM_PAGES * PG);

	fill(g_data, 1, R_DATA, 0);
	g_sums.data = cksum(g_data, sizeof g_data);
	fill(g_bss, BSS_PAGES, R_BSS, 0);
	g_sums.bss = cksum(g_bss, sizeof g_bss);
	fill(stack, STACK_WORDS / WPP, R_STACK, 0);
	g_sums.stack = cksum(stack, sizeof stack);

	tick();

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		die("sigaction");

	long pages = verify(stack);
	if (g_nbad != 0) {
		printf("SETUP FAILED verify: %s\n", g_bad);
		return 1;
	}
	printf("READY pages=%ld heap_mib=%ld seed=%#llx\n", pages, mib, (unsigned long long)g_seed);
	fflush(stdout);

	if (self) {
		for (int i = 0; i < 3; i++)
			tick();
		raise(SIGUSR1);
		if (!g_usr1) {
			printf("SELFCHECK BAD SIGUSR1 handler did not run\n");
			return 1;
		}
		g_usr1 = 0;
		report(stack);
		if (g_nbad != 0)
			return 1;
		return selfcheck(stack);
	}

	for (;;) {
		if (g_usr1) {
			g_usr1 = 0;
			report(stack);
		}
		tick();
		printf("TICK %llu\n", (unsigned long long)g_tick);
		fflush(stdout);
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL); // EINTR on SIGUSR1: verify at once
	}
}
