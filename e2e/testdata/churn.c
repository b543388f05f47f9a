// churn: a self-verifying target that changes its memory as fast as it can,
// in every way that pre-copy has to track, for TestPrecopyCorrectness.
//
// Usage:
//   churn run MIB DIR [thp]   churn; the main region has MIB MiB (files in DIR;
//                             thp: MADV_HUGEPAGE on the main region)
//   churn selfcheck DIR       prove that verify catches injected corruption
//   churn writer PID ADDR     the external writer: serve the requests that
//                             PID posts at ADDR with process_vm_writev
//
// Page format. Every page that holds data (except brk chunks) is
// self-describing: word 0 = tag(region) << 48 | index, word 1 = generation,
// words 2..510 derived from (seed, region, index, generation, word), word
// 511 = checksum of words 0..510. A table in this process says, for every
// page, which generation it must hold (0: zero, or the file's content for
// a file mapping). verify() compares every page with its table entry and
// names what it finds: "stale" (a whole, consistent older or other copy),
// "torn" (a mix of copies or garbage), "missed zap" (data where the page
// was zapped), "lost write" (zero where data was written), "wrong page".
//
// What runs, chosen at random, in a loop that never sleeps:
//   main   MIB MiB: page writes (most in a sliding hot window, each with a new
//          generation from a global counter), MADV_DONTNEED of runs of 1-16
//          pages and now and then of a whole 2 MiB-aligned page table
//   rd     1024 pages filled with read(2) from a 256-page file in DIR (kernel
//          copies); each read brings file pages other than the ones there;
//          MADV_DONTNEED of runs
//   fp     256-page file mapped MAP_PRIVATE read-write: page writes (private
//          copies) and MADV_DONTNEED (back to the file's content); the file
//          on disk must never change
//   slots  16 slots of anonymous mappings of 1-64 pages: mmap (new VMAs),
//          munmap, mremap moving to a fixed new place (grow or shrink),
//          mremap shrinking or growing in place, mprotect read-only and back,
//          MAP_FIXED replacement of a part (with or without a munmap first),
//          page writes and MADV_DONTNEED; verify also checks /proc/self/maps
//   brk    a stack of up to 128 sbrk() chunks of 8 B..64 KiB (unaligned):
//          push (grow brk), pop (shrink brk), rewrite; the kernel's brk must
//          equal the top of the stack (malloc is never used, so nothing else
//          moves brk)
//   xw     1024 pages that only the external writer writes (GUP writes with
//          process_vm_writev). This process posts a request (16 distinct
//          pages, a new sequence number each) in a page-aligned struct with a
//          checksum; the writer reads it with process_vm_readv and writes
//          the 16 whole self-describing pages. This process commits a page
//          to its table only once it reads the complete new page, and posts
//          the next request when all 16 are committed. So every committed
//          page must hold exactly its table's sequence, and only the pages of
//          the one request in flight may hold the old content, the new one,
//          or a word-by-word mix of the two (the writer may be writing them
//          while this process, or a checkpoint of it, reads them).
//
// Consistency. verify() runs only from the main loop between two
// operations (SIGUSR1 just sets a flag), where tables and memory describe
// the same state. An operation cut anywhere by a checkpoint is finished by
// the restored process before it can verify, so any difference is an error
// of the checkpoint or the restore, never a race in this program.
//
// Output (one line each, flushed):
//   READY pid=.. main=0x.. mainpages=.. xwreq=0x.. xw=0x.. xwpages=.. rd=0x..
//         fp=0x.. seed=0x..
//   VERIFY OK ops=.. <counters>   |   VERIFY BAD <first problem> (<n> problems:
//         main=.. rd=.. xw=.. fp=.. slots=.. brk=.. files=.. maps=..)
// and for the writer: WRITER READY, WRITER STOPPED requests=.. pages=.. (on
// SIGTERM or SIGINT, after the request it is writing), or WRITER GONE
// requests=.. pages=.. (the target exited).
// selfcheck prints SELFCHECK OK detected=<n> and exits 0, or SELFCHECK BAD
// lines and exits 1.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PG 4096UL
#define WPP 512UL
#define LASTW (WPP - 1)
#define HUGE (2UL << 20)

enum region { R_MAIN = 1, R_RD, R_RDFILE, R_XW, R_MAP, R_BRK, R_FP, R_FPFILE, R_LAST = R_FPFILE };
static const char *rname[] = {"?", "main", "rd", "rdfile", "xw", "map", "brk", "fp", "fpfile"};

#define MAX_MAIN (1UL << 18) // pages: 1 GiB
#define NRD 1024UL
#define NRDFILE 256UL
#define NXW 1024UL
#define NFP 256UL
#define NSLOT 16
#define SLOTMAX 64UL
#define NBRK 128
#define BRK_LIMIT (4UL << 20)
#define XK 16
#define TAGBASE 0xC0DEULL
#define IDXMASK ((1ULL << 48) - 1)
#define XWMAGIC 0x6368726e57726974ULL

static uint64_t g_seed = 0x5eedc0de5eedc0deULL;
static uint64_t g_rng = 0x9e3779b97f4a7c15ULL;
static uint64_t g_gen;  // last generation handed out (main, fp, slots)
static uint64_t g_uid;  // last slot / brk chunk id
static uint64_t g_xseq; // last xw sequence number

static uint64_t *g_main;
static size_t g_nmain;
static size_t g_hot;
static uint64_t g_main_tab[MAX_MAIN];

static uint64_t *g_rd;
static uint64_t g_rd_tab[NRD]; // file page + 1, 0 = zero
static int g_rdfd = -1;
static char g_rdpath[4096];

static uint64_t *g_fp;
static uint64_t g_fp_tab[NFP]; // 0 = the file's content
static char g_fppath[4096];

static uint64_t *g_xw;
static uint64_t g_xw_tab[NXW];

struct xwreq {
	uint64_t magic, id, n, base, seed;
	uint64_t idx[XK], seq[XK];
	uint64_t sum;
};
static struct xwreq g_req __attribute__((aligned(4096)));
static int g_pend;     // g_req is posted and not all of its pages were seen
static int g_got[XK];  // page k of g_req was seen whole and committed
static uint64_t g_reqid;

// A slot remembers its last structural operations for VERIFY BAD.
#define NHIST 6
struct event {
	unsigned long long ops, gen; // when (operation count, last generation)
	char what;                   // M map, U unmap, V move, I in place, P mprotect, H punch
	uintptr_t a;
	uint64_t n, arg;
};
struct slot {
	uint64_t *a;
	uint64_t n, uid;
	int used, ro, split;
	uint64_t gen[SLOTMAX];
	struct event hist[NHIST];
	unsigned nhist;
};
static struct slot g_slot[NSLOT];

struct chunk {
	uint64_t *p;
	size_t words;
	uint64_t uid;
};
static struct chunk g_bc[NBRK];
static int g_nbc;
static uintptr_t g_brk_base;
static size_t g_brk_total;

static struct {
	unsigned long long ops, mainw, mainz, bigz, rdr, rdz, fpw, fpz, slotw, slotz, mmap, munmap,
	    mremap_move, mremap_inplace, mprotect, punch, sbrk, unsbrk, brkw, xwreq, xwdone, mremap_efault, mremap_partial;
} g_n;

static volatile sig_atomic_t g_usr1, g_stop;
static char g_outbuf[1 << 16];

static char g_bad[2048];
static long g_nbad;
// problems per part of verify, for the VERIFY BAD line
enum part { P_MAIN, P_RD, P_XW, P_FP, P_SLOTS, P_BRK, P_FILES, P_MAPS, NPART };
static const char *pname[] = {"main", "rd", "xw", "fp", "slots", "brk", "files", "maps"};
static long g_pbad[NPART];
static int g_part;
static int g_xwpend, g_xwmixed;

// ---- patterns -------------------------------------------------------------

static uint64_t mix(uint64_t seed, uint64_t a, uint64_t b) {
	uint64_t x = seed ^ (a * 0x9E3779B97F4A7C15ULL) ^ (b * 0xC2B2AE3D27D4EB4FULL);
	x ^= x >> 30;
	x *= 0xBF58476D1CE4E5B9ULL;
	x ^= x >> 27;
	x *= 0x94D049BB133111EBULL;
	x ^= x >> 31;
	return x;
}

static uint64_t rnd(void) {
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return g_rng;
}

static uint64_t tagof(int r) { return (TAGBASE + (uint64_t)r) << 48; }

static uint64_t pword(int r, uint64_t idx, uint64_t gen, uint64_t j) {
	return mix(g_seed ^ ((uint64_t)r << 56), idx, (gen << 9) | j);
}

static uint64_t cksum(const uint64_t *w, size_t n) {
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= w[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void put_page(uint64_t *p, int r, uint64_t idx, uint64_t gen) {
	p[0] = tagof(r) | idx;
	p[1] = gen;
	for (size_t j = 2; j < LASTW; j++)
		p[j] = pword(r, idx, gen, j);
	p[LASTW] = cksum(p, LASTW);
}

static int page_is(const uint64_t *p, int r, uint64_t idx, uint64_t gen) {
	static uint64_t want[WPP];
	put_page(want, r, idx, gen);
	return memcmp(p, want, PG) == 0;
}

static int is_zero(const uint64_t *p, size_t words) {
	for (size_t j = 0; j < words; j++)
		if (p[j] != 0)
			return 0;
	return 1;
}

// parse_page says whether p is a whole, consistent page of some region.
static int parse_page(const uint64_t *p, int *r, uint64_t *idx, uint64_t *gen) {
	uint64_t tag = p[0] >> 48;
	if (tag <= TAGBASE || tag > TAGBASE + R_LAST)
		return 0;
	*r = (int)(tag - TAGBASE);
	*idx = p[0] & IDXMASK;
	*gen = p[1];
	return page_is(p, *r, *idx, *gen);
}

// ---- reporting ------------------------------------------------------------

static void bad(const char *fmt, ...) {
	g_pbad[g_part]++;
	if (g_nbad++ == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(g_bad, sizeof g_bad, fmt, ap);
		va_end(ap);
	}
}

static void die(const char *what) {
	printf("CHURN FAILED %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(1);
}

static void nap(long us) {
	struct timespec ts = {0, us * 1000};
	nanosleep(&ts, NULL);
}

// check_page compares p with what it must hold: page (r, idx, gen), or zero
// if r is 0. zapped says the expected state comes from a zap (or is the
// initial file content), so that a data page there is a "missed zap".
static void check_page(const char *what, size_t i, const uint64_t *p, int r, uint64_t idx, uint64_t gen,
                       int zapped) {
	static uint64_t want[WPP];
	if (r == 0)
		memset(want, 0, PG);
	else
		put_page(want, r, idx, gen);
	if (memcmp(p, want, PG) == 0)
		return;
	int pr;
	uint64_t pidx, pgen;
	if (r != 0 && is_zero(p, WPP)) {
		bad("%s %zu lost write: reads zero, want %s %llu gen %llu", what, i, rname[r],
		    (unsigned long long)idx, (unsigned long long)gen);
		return;
	}
	if (parse_page(p, &pr, &pidx, &pgen)) {
		if (zapped && (pr != r || pidx != idx))
			bad("%s %zu missed zap: holds %s %llu gen %llu, want %s", what, i, rname[pr],
			    (unsigned long long)pidx, (unsigned long long)pgen, r ? "the file's content" : "zero");
		else if (pr == r && (pidx == idx || r == R_RDFILE))
			bad("%s %zu stale: holds %s %llu gen %llu, want %s %llu gen %llu", what, i, rname[pr],
			    (unsigned long long)pidx, (unsigned long long)pgen, rname[r], (unsigned long long)idx,
			    (unsigned long long)gen);
		else
			bad("%s %zu wrong page: holds %s %llu gen %llu, want %s %llu gen %llu", what, i, rname[pr],
			    (unsigned long long)pidx, (unsigned long long)pgen, r ? rname[r] : "zero",
			    (unsigned long long)idx, (unsigned long long)gen);
		return;
	}
	size_t j = 0;
	while (j < WPP && p[j] == want[j])
		j++;
	bad("%s %zu torn: word %zu is %#llx, want %#llx (page header %#llx gen %llu; want %s %llu gen %llu)", what, i,
	    j, (unsigned long long)p[j], (unsigned long long)want[j], (unsigned long long)p[0],
	    (unsigned long long)p[1], r ? rname[r] : "zero", (unsigned long long)idx, (unsigned long long)gen);
}

// check_mixed accepts, word by word, xw page i of sequence a or b.
static void check_mixed(size_t i, const uint64_t *p, uint64_t a, uint64_t b) {
	static uint64_t pa[WPP], pb[WPP];
	put_page(pa, R_XW, i, a);
	put_page(pb, R_XW, i, b);
	int sawa = 0, sawb = 0;
	for (size_t j = 0; j < WPP; j++) {
		if (p[j] == pa[j] && p[j] == pb[j])
			continue;
		if (p[j] == pa[j])
			sawa = 1;
		else if (p[j] == pb[j])
			sawb = 1;
		else {
			bad("xw %zu torn: word %zu is %#llx, neither seq %llu nor seq %llu of the request in flight", i, j,
			    (unsigned long long)p[j], (unsigned long long)a, (unsigned long long)b);
			return;
		}
	}
	if (sawa && sawb)
		g_xwmixed++;
}

// ---- /proc/self/maps ------------------------------------------------------

static char g_maps[1 << 20];

static void read_maps(void) {
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	size_t n = 0;
	g_maps[0] = 0;
	if (fd < 0) {
		bad("open /proc/self/maps: %s", strerror(errno));
		return;
	}
	for (;;) {
		ssize_t got = read(fd, g_maps + n, sizeof g_maps - 1 - n);
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	g_maps[n] = 0;
}

// check_range says whether [a, b) is covered by mappings with perms.
static int check_range(const char *what, uintptr_t a, uintptr_t b, const char *perms) {
	uintptr_t cur = a;
	for (const char *l = g_maps; *l && cur < b;) {
		char *e, pm[5];
		unsigned long start = strtoul(l, &e, 16), end = *e == '-' ? strtoul(e + 1, &e, 16) : 0;
		int ok = *e == ' ' && e[1] && e[2] && e[3] && e[4];
		if (ok)
			memcpy(pm, e + 1, 4);
		pm[4] = 0;
		if (ok && start <= cur && cur < end) {
			if (strcmp(pm, perms) != 0) {
				bad("%s: %#lx-%#lx has perms %s, want %s", what, start, end, pm, perms);
				return 0;
			}
			cur = end;
		}
		l = strchr(l, '\n');
		if (l == NULL)
			break;
		l++;
	}
	if (cur < b) {
		bad("%s: no mapping at %#lx (want %#lx-%#lx %s)", what, (unsigned long)cur, (unsigned long)a,
		    (unsigned long)b, perms);
		return 0;
	}
	return 1;
}

// ---- files ------------------------------------------------------------------

static void make_file(char *path, const char *dir, const char *name, int r, size_t npages) {
	snprintf(path, 4096, "%s/churn-%d-%s.dat", dir, (int)getpid(), name);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die(path);
	static uint64_t buf[WPP];
	for (size_t i = 0; i < npages; i++) {
		put_page(buf, r, i, 1);
		if (write(fd, buf, PG) != (ssize_t)PG)
			die("write file");
	}
	if (fsync(fd) != 0)
		die("fsync");
	close(fd);
}

// check_file compares a file on disk with its pattern.
static void check_file(const char *what, const char *path, int r, size_t npages) {
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
		if (!page_is(buf, r, i, 1)) {
			bad("%s page %zu changed on disk (%s)", what, i, path);
			break;
		}
	}
	close(fd);
}

// ---- verify ----------------------------------------------------------------

static void slot_event(struct slot *s, char what, uint64_t arg) {
	struct event *e = &s->hist[s->nhist++ % NHIST];
	*e = (struct event){g_n.ops, g_gen, what, (uintptr_t)s->a, s->n, arg};
}

// slot_history describes s's last structural operations, oldest first.
static const char *slot_history(const struct slot *s) {
	static char buf[1024];
	size_t n = 0;
	unsigned from = s->nhist > NHIST ? s->nhist - NHIST : 0;
	for (unsigned k = from; k < s->nhist && n < sizeof buf; k++) {
		const struct event *e = &s->hist[k % NHIST];
		n += (size_t)snprintf(buf + n, sizeof buf - n, " [op %llu gen %llu %c %#lx+%llu arg %llu]", e->ops, e->gen,
		                      e->what, (unsigned long)e->a, (unsigned long long)e->n, (unsigned long long)e->arg);
	}
	return buf;
}


// on_segv reports a fault before the process dies of it: the address,
// what this program thinks is there, and the kernel's mapping of it. A
// checkpoint must never make a valid access fault; when one does, this
// line says where to look. (Not async-signal-safe; the process is dying.)
static void on_segv(int sig, siginfo_t *si, void *uc) {
	(void)uc;
	uintptr_t a = (uintptr_t)si->si_addr;
	printf("CHURN FAILED signal %d code %d at %#lx (op %llu):", sig, si->si_code, (unsigned long)a, g_n.ops);
	for (int k = 0; k < NSLOT; k++) {
		const struct slot *s = &g_slot[k];
		if (s->used && a >= (uintptr_t)s->a && a < (uintptr_t)s->a + s->n * PG)
			printf(" slot %d page %lu ro=%d split=%d:%s;", k, (unsigned long)((a - (uintptr_t)s->a) / PG), s->ro,
			       s->split, slot_history(s));
	}
	read_maps();
	for (const char *l = g_maps; *l;) {
		char *e;
		unsigned long lo = strtoul(l, &e, 16), hi = *e == '-' ? strtoul(e + 1, &e, 16) : 0;
		const char *nl = strchr(l, '\n');
		int len = nl ? (int)(nl - l) : (int)strlen(l);
		if (a >= lo - 2 * PG && a < hi + 2 * PG)
			printf(" maps: %.*s;", len, l);
		if (nl == NULL)
			break;
		l = nl + 1;
	}
	printf("\n");
	fflush(stdout);
	raise(sig);
}

static uint64_t bword(uint64_t uid, size_t j) { return pword(R_BRK, uid, 0, j); }

static size_t g_vpages, g_vzero;

static void verify(void) {
	g_nbad = 0;
	g_bad[0] = 0;
	g_xwpend = g_xwmixed = 0;
	g_vpages = g_vzero = 0;
	memset(g_pbad, 0, sizeof g_pbad);
	g_part = P_MAPS;
	read_maps();

	g_part = P_MAIN;
	if (check_range("main region", (uintptr_t)g_main, (uintptr_t)(g_main + g_nmain * WPP), "rw-p")) {
		for (size_t i = 0; i < g_nmain; i++) {
			uint64_t g = g_main_tab[i];
			check_page("main", i, g_main + i * WPP, g ? R_MAIN : 0, i, g, g == 0);
			g_vzero += g == 0;
		}
		g_vpages += g_nmain;
	}

	g_part = P_RD;
	if (check_range("rd region", (uintptr_t)g_rd, (uintptr_t)(g_rd + NRD * WPP), "rw-p")) {
		for (size_t i = 0; i < NRD; i++) {
			uint64_t v = g_rd_tab[i];
			check_page("rd", i, g_rd + i * WPP, v ? R_RDFILE : 0, v ? v - 1 : 0, v ? 1 : 0, v == 0);
			g_vzero += v == 0;
		}
		g_vpages += NRD;
	}
	g_part = P_FILES;
	check_file("rdfile", g_rdpath, R_RDFILE, NRDFILE);

	g_part = P_XW;
	if (check_range("xw region", (uintptr_t)g_xw, (uintptr_t)(g_xw + NXW * WPP), "rw-p")) {
		for (size_t i = 0; i < NXW; i++) {
			int k = -1;
			if (g_pend)
				for (int m = 0; m < (int)g_req.n; m++)
					if (g_req.idx[m] == i && !g_got[m])
						k = m;
			if (k >= 0) {
				g_xwpend++;
				check_mixed(i, g_xw + i * WPP, g_xw_tab[i], g_req.seq[k]);
			} else
				check_page("xw", i, g_xw + i * WPP, R_XW, i, g_xw_tab[i], 0);
		}
		g_vpages += NXW;
	}

	g_part = P_FP;
	if (check_range("fp region", (uintptr_t)g_fp, (uintptr_t)(g_fp + NFP * WPP), "rw-p")) {
		for (size_t i = 0; i < NFP; i++) {
			uint64_t g = g_fp_tab[i];
			check_page("fp", i, g_fp + i * WPP, g ? R_FP : R_FPFILE, i, g ? g : 1, g == 0);
		}
		g_vpages += NFP;
	}
	g_part = P_FILES;
	check_file("fpfile", g_fppath, R_FPFILE, NFP);

	g_part = P_SLOTS;
	for (int s = 0; s < NSLOT; s++) {
		struct slot *sl = &g_slot[s];
		if (!sl->used)
			continue;
		char what[64];
		snprintf(what, sizeof what, "map slot %d", s);
		if (!check_range(what, (uintptr_t)sl->a, (uintptr_t)(sl->a + sl->n * WPP), sl->ro ? "r--p" : "rw-p"))
			continue;
		snprintf(what, sizeof what, "map slot %d page", s);
		long before = g_nbad;
		for (size_t p = 0; p < sl->n; p++) {
			uint64_t g = sl->gen[p];
			check_page(what, p, sl->a + p * WPP, g ? R_MAP : 0, sl->uid * SLOTMAX + p, g, g == 0);
			g_vzero += g == 0;
		}
		if (before == 0 && g_nbad > 0) {
			size_t l = strlen(g_bad);
			snprintf(g_bad + l, sizeof g_bad - l, "; slot %#lx+%llu split=%d ro=%d, history:%s",
			         (unsigned long)(uintptr_t)sl->a, (unsigned long long)sl->n, sl->split, sl->ro,
			         slot_history(sl));
		}
		g_vpages += sl->n;
	}

	g_part = P_BRK;
	uintptr_t top = g_brk_base + g_brk_total;
	uintptr_t kbrk = (uintptr_t)syscall(SYS_brk, 0);
	if (kbrk != top)
		bad("brk top is %#lx (kernel), want %#lx (base %#lx + %zu bytes in %d chunks)", (unsigned long)kbrk,
		    (unsigned long)top, (unsigned long)g_brk_base, g_brk_total, g_nbc);
	else if ((uintptr_t)sbrk(0) != top)
		bad("brk top is %#lx (libc), want %#lx", (unsigned long)(uintptr_t)sbrk(0), (unsigned long)top);
	else {
		uintptr_t at = g_brk_base;
		for (int c = 0; c < g_nbc; c++) {
			struct chunk *ch = &g_bc[c];
			if ((uintptr_t)ch->p != at) {
				bad("brk chunk %d at %p, want %#lx", c, (void *)ch->p, (unsigned long)at);
				break;
			}
			for (size_t j = 0; j < ch->words; j++)
				if (ch->p[j] != bword(ch->uid, j)) {
					bad("brk chunk %d word %zu is %#llx, want %#llx (chunk of %zu words at %p)", c, j,
					    (unsigned long long)ch->p[j], (unsigned long long)bword(ch->uid, j), ch->words,
					    (void *)ch->p);
					break;
				}
			at += ch->words * 8;
		}
	}
}

static unsigned long long g_reports; /* verifies reported: says which point in time a restored copy is from */

static void report(void) {
	verify();
	g_reports++;
	if (g_nbad == 0)
		printf("VERIFY OK ops=%llu mainw=%llu mainz=%llu bigz=%llu rdr=%llu rdz=%llu fpw=%llu fpz=%llu "
		       "slotw=%llu slotz=%llu mmap=%llu munmap=%llu mremap_move=%llu mremap_inplace=%llu "
		       "mprotect=%llu punch=%llu sbrk=%llu unsbrk=%llu brkw=%llu xwreq=%llu xwdone=%llu "
		       "mremap_efault=%llu mremap_partial=%llu pages=%zu zero=%zu xwpend=%d xwmixed=%d brkchunks=%d verifies=%llu\n",
		       g_n.ops, g_n.mainw, g_n.mainz, g_n.bigz, g_n.rdr, g_n.rdz, g_n.fpw, g_n.fpz, g_n.slotw,
		       g_n.slotz, g_n.mmap, g_n.munmap, g_n.mremap_move, g_n.mremap_inplace, g_n.mprotect, g_n.punch,
		       g_n.sbrk, g_n.unsbrk, g_n.brkw, g_n.xwreq, g_n.xwdone, g_n.mremap_efault, g_n.mremap_partial, g_vpages, g_vzero, g_xwpend, g_xwmixed,
		       g_nbc, g_reports);
	else {
		char per[256];
		size_t n = 0;
		for (int k = 0; k < NPART; k++)
			n += (size_t)snprintf(per + n, sizeof per - n, " %s=%ld", pname[k], g_pbad[k]);
		printf("VERIFY BAD %s (%ld problems:%s)\n", g_bad, g_nbad, per);
	}
	fflush(stdout);
}

// ---- operations -------------------------------------------------------------

static void main_write_at(size_t i) {
	uint64_t g = ++g_gen;
	put_page(g_main + i * WPP, R_MAIN, i, g);
	g_main_tab[i] = g;
	g_n.mainw++;
}

static void main_zap_at(size_t i, size_t n) {
	if (madvise(g_main + i * WPP, n * PG, MADV_DONTNEED) != 0)
		die("madvise main");
	for (size_t k = 0; k < n; k++)
		g_main_tab[i + k] = 0;
	g_n.mainz++;
}

static void main_write(void) {
	uint64_t r = rnd();
	size_t i;
	if ((r & 7) < 6)
		i = (g_hot + (r >> 8) % (g_nmain / 16 + 1)) % g_nmain;
	else
		i = (r >> 8) % g_nmain;
	main_write_at(i);
}

static void main_zap(void) {
	if (rnd() % 512 == 0 && g_nmain >= 1024) {
		// a whole 2 MiB-aligned page table (g_main is 2 MiB aligned)
		size_t i = (rnd() % (g_nmain / 512)) * 512;
		main_zap_at(i, 512);
		g_n.bigz++;
		return;
	}
	size_t i = rnd() % g_nmain, n = 1 + rnd() % 16;
	if (i + n > g_nmain)
		n = g_nmain - i;
	main_zap_at(i, n);
}

// rd_read_at reads file pages f.. into rd pages i.. with read(2).
static void rd_read_at(size_t i, size_t n, size_t f) {
	if (lseek(g_rdfd, (off_t)(f * PG), SEEK_SET) != (off_t)(f * PG))
		die("lseek");
	if (read(g_rdfd, g_rd + i * WPP, n * PG) != (ssize_t)(n * PG))
		die("read");
	for (size_t k = 0; k < n; k++)
		g_rd_tab[i + k] = f + k + 1;
	g_n.rdr++;
}

static void rd_read(void) {
	size_t i = rnd() % NRD, n = 1 + rnd() % 8;
	if (i + n > NRD)
		n = NRD - i;
	for (int try = 0; try < 8; try++) {
		size_t f = rnd() % (NRDFILE - n + 1), k;
		// every page must change, so that a stale copy is caught
		for (k = 0; k < n; k++)
			if (g_rd_tab[i + k] == f + k + 1)
				break;
		if (k == n) {
			rd_read_at(i, n, f);
			return;
		}
	}
}

static void rd_zap(void) {
	size_t i = rnd() % NRD, n = 1 + rnd() % 8;
	if (i + n > NRD)
		n = NRD - i;
	if (madvise(g_rd + i * WPP, n * PG, MADV_DONTNEED) != 0)
		die("madvise rd");
	for (size_t k = 0; k < n; k++)
		g_rd_tab[i + k] = 0;
	g_n.rdz++;
}

static void fp_write_at(size_t i) {
	uint64_t g = ++g_gen;
	put_page(g_fp + i * WPP, R_FP, i, g);
	g_fp_tab[i] = g;
	g_n.fpw++;
}

static void fp_zap_at(size_t i, size_t n) {
	if (madvise(g_fp + i * WPP, n * PG, MADV_DONTNEED) != 0)
		die("madvise fp");
	for (size_t k = 0; k < n; k++)
		g_fp_tab[i + k] = 0;
	g_n.fpz++;
}

static void fp_zap(void) {
	size_t i = rnd() % NFP, n = 1 + rnd() % 4;
	if (i + n > NFP)
		n = NFP - i;
	fp_zap_at(i, n);
}

static void slot_page(struct slot *s, size_t p) {
	uint64_t g = ++g_gen;
	put_page(s->a + p * WPP, R_MAP, s->uid * SLOTMAX + p, g);
	s->gen[p] = g;
}

// slot_fill writes every page of [from, to), or about half of them (the
// others are zero, never touched).
static void slot_fill(struct slot *s, size_t from, size_t to, int all) {
	for (size_t p = from; p < to; p++) {
		if (all || (rnd() & 1))
			slot_page(s, p);
		else
			s->gen[p] = 0;
	}
}

static struct slot *pick_slot(int writable) {
	for (int t = 0; t < 4; t++) {
		struct slot *s = &g_slot[rnd() % NSLOT];
		if (s->used && (!writable || !s->ro))
			return s;
	}
	return NULL;
}

static void slot_write(void) {
	struct slot *s = pick_slot(1);
	if (s == NULL)
		return;
	slot_page(s, rnd() % s->n);
	g_n.slotw++;
}

static void slot_zap(void) {
	struct slot *s = pick_slot(1);
	if (s == NULL)
		return;
	size_t p = rnd() % s->n;
	if (madvise(s->a + p * WPP, PG, MADV_DONTNEED) != 0)
		die("madvise slot");
	s->gen[p] = 0;
	g_n.slotz++;
}

static void slot_map_at(struct slot *s, size_t n) {
	void *a = mmap(NULL, n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		die("mmap slot");
	s->a = a;
	s->n = n;
	s->uid = ++g_uid;
	s->ro = s->split = 0;
	s->used = 1;
	s->nhist = 0;
	slot_fill(s, 0, n, 0);
	slot_event(s, 'M', 0);
	g_n.mmap++;
}

static void slot_mapunmap(void) {
	struct slot *s = &g_slot[rnd() % NSLOT];
	if (!s->used) {
		slot_map_at(s, 1 + rnd() % SLOTMAX);
		return;
	}
	if (munmap(s->a, s->n * PG) != 0)
		die("munmap slot");
	s->used = 0;
	g_n.munmap++;
}

// undo_partial_move moves back to the slot s the VMAs that a failed
// mremap(MREMAP_FIXED) of it moved to dst before it failed (see
// slot_mremap): they are the mappings in dst other than its PROT_NONE
// reservation, each a single VMA the kernel can move alone.
static void undo_partial_move(struct slot *s, void *dst) {
	uintptr_t lo = (uintptr_t)dst, hi = lo + s->n * PG;
	uintptr_t moved[SLOTMAX][2];
	int n = 0;
	read_maps(); // no stdio here: its malloc would move brk (see brk above)
	for (const char *l = g_maps; *l;) {
		char *e;
		unsigned long a = strtoul(l, &e, 16), b = *e == '-' ? strtoul(e + 1, &e, 16) : 0;
		if (*e == ' ' && e[1] != '-' && a >= lo && b <= hi && b > a && n < SLOTMAX) {
			moved[n][0] = a;
			moved[n][1] = b;
			n++;
		}
		const char *nl = strchr(l, '\n');
		if (nl == NULL)
			break;
		l = nl + 1;
	}
	for (int k = 0; k < n; k++) {
		uintptr_t to = (uintptr_t)s->a + (moved[k][0] - lo);
		if (mremap((void *)moved[k][0], moved[k][1] - moved[k][0], moved[k][1] - moved[k][0],
		           MREMAP_MAYMOVE | MREMAP_FIXED, (void *)to) == MAP_FAILED)
			die("mremap back a partial move");
		g_n.mremap_partial++;
	}
}

static void slot_mremap(void) {
	struct slot *s = pick_slot(0);
	if (s == NULL || s->split)
		return; // mremap needs a single VMA
	size_t n2 = 1 + rnd() % SLOTMAX;
	if (rnd() & 1) {
		// move to a place chosen here: a PROT_NONE reservation replaced
		void *dst = mmap(NULL, n2 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (dst == MAP_FAILED)
			die("mmap mremap destination");
		void *q = mremap(s->a, s->n * PG, n2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
		if (q == MAP_FAILED) {
			if (errno != EFAULT)
				die("mremap move");
			// The slot is more than one VMA. Since Linux 6.17 a
			// same-size move of several VMAs is allowed, but not of
			// userfaultfd-armed ones (a checkpointer's write tracking):
			// the kernel then moves the VMAs before the first armed one
			// and fails with EFAULT. Put what moved back.
			if (n2 == s->n)
				undo_partial_move(s, dst);
			munmap(dst, n2 * PG);
			s->split = 1;
			g_n.mremap_efault++;
			return;
		}
		uintptr_t from = (uintptr_t)s->a;
		s->a = q;
		for (size_t p = s->n; p < n2; p++)
			s->gen[p] = 0;
		s->n = n2;
		slot_event(s, 'V', from);
		g_n.mremap_move++;
		return;
	}
	void *q = mremap(s->a, s->n * PG, n2 * PG, 0);
	if (q == MAP_FAILED) {
		if (errno == ENOMEM)
			return; // no room to grow in place
		if (errno != EFAULT)
			die("mremap in place");
		s->split = 1;
		g_n.mremap_efault++;
		return;
	}
	uint64_t n1 = s->n;
	for (size_t p = s->n; p < n2; p++)
		s->gen[p] = 0;
	s->n = n2;
	slot_event(s, 'I', n1);
	g_n.mremap_inplace++;
}

static void slot_mprotect(void) {
	struct slot *s = pick_slot(0);
	if (s == NULL)
		return;
	if (mprotect(s->a, s->n * PG, s->ro ? PROT_READ | PROT_WRITE : PROT_READ) != 0)
		die("mprotect slot");
	s->ro = !s->ro;
	slot_event(s, 'P', (uint64_t)s->ro);
	g_n.mprotect++;
}

// slot_punch replaces pages in the middle of a slot with a new mapping.
static void slot_punch(void) {
	struct slot *s = pick_slot(1);
	if (s == NULL || s->n < 3)
		return;
	size_t off = 1 + rnd() % (s->n - 2), len = 1 + rnd() % (s->n - 1 - off);
	uint64_t *at = s->a + off * WPP;
	if ((rnd() & 1) && munmap(at, len * PG) != 0)
		die("munmap punch");
	void *q = mmap(at, len * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (q != (void *)at)
		die("mmap punch");
	s->split = 1;
	slot_fill(s, off, off + len, 0);
	slot_event(s, 'H', off << 8 | len);
	g_n.punch++;
}

static void brk_fill(struct chunk *c) {
	for (size_t j = 0; j < c->words; j++)
		c->p[j] = bword(c->uid, j);
}

static void brk_op(void) {
	uint64_t r = rnd() % 100;
	if (r < 45 && g_nbc < NBRK && g_brk_total < BRK_LIMIT) {
		size_t words = 1 + rnd() % 8192;
		void *p = sbrk((intptr_t)(words * 8));
		if (p == (void *)-1)
			die("sbrk");
		struct chunk *c = &g_bc[g_nbc];
		c->p = p;
		c->words = words;
		c->uid = ++g_uid;
		g_brk_total += words * 8;
		g_nbc++;
		brk_fill(c);
		g_n.sbrk++;
	} else if (r < 80 && g_nbc > 0) {
		struct chunk *c = &g_bc[g_nbc - 1];
		if (sbrk(-(intptr_t)(c->words * 8)) == (void *)-1)
			die("sbrk shrink");
		g_brk_total -= c->words * 8;
		g_nbc--;
		g_n.unsbrk++;
	} else if (g_nbc > 0) {
		struct chunk *c = &g_bc[rnd() % g_nbc];
		c->uid = ++g_uid;
		brk_fill(c);
		g_n.brkw++;
	}
}

// ---- external writer protocol ---------------------------------------------

static uint64_t req_sum(const struct xwreq *q) { return cksum((const uint64_t *)q, offsetof(struct xwreq, sum) / 8); }

static void xw_post(void) {
	struct xwreq *q = &g_req;
	q->n = XK;
	for (int k = 0; k < XK; k++) {
		uint64_t i;
		int dup;
		do {
			i = rnd() % NXW;
			dup = 0;
			for (int m = 0; m < k; m++)
				dup |= q->idx[m] == i;
		} while (dup);
		q->idx[k] = i;
		q->seq[k] = ++g_xseq;
		g_got[k] = 0;
	}
	q->base = (uint64_t)(uintptr_t)g_xw;
	q->seed = g_seed;
	q->magic = XWMAGIC;
	q->id = ++g_reqid;
	q->sum = req_sum(q);
	g_pend = 1;
	g_n.xwreq++;
}

// xw_poll commits the pages of the request in flight that the writer has
// written whole, and posts the next request once all are.
static void xw_poll(void) {
	if (!g_pend) {
		xw_post();
		return;
	}
	int all = 1;
	for (int k = 0; k < (int)g_req.n; k++) {
		if (g_got[k])
			continue;
		uint64_t i = g_req.idx[k];
		const uint64_t *p = g_xw + i * WPP;
		if (p[1] == g_req.seq[k] && page_is(p, R_XW, i, g_req.seq[k])) {
			g_xw_tab[i] = g_req.seq[k];
			g_got[k] = 1;
		} else
			all = 0;
	}
	if (all) {
		g_pend = 0;
		g_n.xwdone++;
	}
}

// serve_once reads pid's request at addr and, if it is new, writes its pages
// with process_vm_writev. It returns the pages written, 0 if there was
// nothing to do, -1 if pid is gone.
static long serve_once(pid_t pid, uint64_t addr, uint64_t *last) {
	static struct xwreq r;
	static uint64_t pages[XK][WPP];
	struct iovec l = {&r, sizeof r}, rm = {(void *)(uintptr_t)addr, sizeof r};
	ssize_t n = process_vm_readv(pid, &l, 1, &rm, 1, 0);
	if (n < 0) {
		if (errno == ESRCH)
			return -1;
		die("process_vm_readv");
	}
	if (n != (ssize_t)sizeof r || r.magic != XWMAGIC || r.sum != req_sum(&r) || r.id == *last || r.n == 0 ||
	    r.n > XK)
		return 0;
	uint64_t saved = g_seed;
	g_seed = r.seed;
	struct iovec li[XK], ri[XK];
	for (uint64_t k = 0; k < r.n; k++) {
		if (r.idx[k] >= NXW) {
			errno = EINVAL;
			die("request index out of range");
		}
		put_page(pages[k], R_XW, r.idx[k], r.seq[k]);
		li[k] = (struct iovec){pages[k], PG};
		ri[k] = (struct iovec){(void *)(uintptr_t)(r.base + r.idx[k] * PG), PG};
	}
	g_seed = saved;
	n = process_vm_writev(pid, li, r.n, ri, r.n, 0);
	if (n < 0) {
		if (errno == ESRCH)
			return -1;
		die("process_vm_writev");
	}
	if (n != (ssize_t)(r.n * PG)) {
		errno = EIO;
		die("process_vm_writev wrote part of a request");
	}
	*last = r.id;
	return (long)r.n;
}

static void on_stop(int sig) {
	(void)sig;
	g_stop = 1;
}

static int writer_main(pid_t pid, uint64_t addr) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
		die("sigaction");
	unsigned long long reqs = 0, pages = 0;
	uint64_t last = 0;
	printf("WRITER READY pid=%d\n", (int)pid);
	fflush(stdout);
	while (!g_stop) {
		long n = serve_once(pid, addr, &last);
		if (n < 0) {
			printf("WRITER GONE requests=%llu pages=%llu\n", reqs, pages);
			fflush(stdout);
			return 0;
		}
		if (n == 0) {
			nap(100);
			continue;
		}
		reqs++;
		pages += (unsigned long long)n;
	}
	printf("WRITER STOPPED requests=%llu pages=%llu\n", reqs, pages);
	fflush(stdout);
	return 0;
}

// ---- setup and main loop ------------------------------------------------------

static void op(void) {
	g_n.ops++;
	if ((g_n.ops & 4095) == 0)
		g_hot = rnd() % g_nmain;
	uint64_t r = rnd() % 1000;
	if (r < 600)
		main_write();
	else if (r < 630)
		main_zap();
	else if (r < 730)
		rd_read();
	else if (r < 750)
		rd_zap();
	else if (r < 790)
		fp_write_at(rnd() % NFP);
	else if (r < 805)
		fp_zap();
	else if (r < 845)
		slot_write();
	else if (r < 855)
		slot_zap();
	else if (r < 865)
		slot_mapunmap();
	else if (r < 875)
		slot_mremap();
	else if (r < 880)
		slot_mprotect();
	else if (r < 885)
		slot_punch();
	else if (r < 925)
		brk_op();
	else
		main_write();
}

static void *map_anon(size_t len) {
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

static void setup(size_t mib, const char *dir, int thp) {
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	g_seed = mix(g_seed, (uint64_t)getpid(), (uint64_t)now.tv_nsec);
	g_rng ^= mix(g_seed, 1, 2);
	g_brk_base = (uintptr_t)sbrk(0);

	g_nmain = mib * 256;
	if (g_nmain < 1 || g_nmain > MAX_MAIN) {
		errno = EINVAL;
		die("main region size");
	}
	// 2 MiB aligned, so that a zap can drop whole page tables
	char *raw = map_anon(g_nmain * PG + HUGE);
	char *al = (char *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
	if (al > raw && munmap(raw, (size_t)(al - raw)) != 0)
		die("munmap head");
	if ((size_t)(raw + HUGE - al) > 0 && munmap(al + g_nmain * PG, (size_t)(raw + HUGE - al)) != 0)
		die("munmap tail");
	g_main = (uint64_t *)al;
	if (thp && madvise(g_main, g_nmain * PG, MADV_HUGEPAGE) != 0)
		die("madvise hugepage");
	for (size_t i = 0; i < g_nmain; i++)
		main_write_at(i);

	make_file(g_rdpath, dir, "rd", R_RDFILE, NRDFILE);
	g_rdfd = open(g_rdpath, O_RDONLY);
	if (g_rdfd < 0)
		die(g_rdpath);
	g_rd = map_anon(NRD * PG);
	for (size_t i = 0; i < NRD / 2; i += 8)
		rd_read_at(i, 8, i % (NRDFILE - 8));

	make_file(g_fppath, dir, "fp", R_FPFILE, NFP);
	int fd = open(g_fppath, O_RDONLY | O_CLOEXEC); // MAP_PRIVATE needs no write access
	if (fd < 0)
		die(g_fppath);
	g_fp = mmap(NULL, NFP * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (g_fp == MAP_FAILED)
		die("mmap fp");
	close(fd);
	for (size_t i = 0; i < NFP; i += 3)
		fp_write_at(i);

	g_xw = map_anon(NXW * PG);
	for (size_t i = 0; i < NXW; i++) {
		g_xw_tab[i] = ++g_xseq;
		put_page(g_xw + i * WPP, R_XW, i, g_xw_tab[i]);
	}

	for (int s = 0; s < NSLOT; s += 2)
		slot_map_at(&g_slot[s], 1 + rnd() % SLOTMAX);
	for (int k = 0; k < 16; k++)
		brk_op();
	memset(&g_n, 0, sizeof g_n);
}

static void on_usr1(int sig) {
	(void)sig;
	g_usr1 = 1;
}

// ---- selfcheck --------------------------------------------------------------

static int g_detected, g_failed;

// expect runs verify and wants exactly one problem, naming want.
static void expect(const char *want) {
	verify();
	if (g_nbad == 1 && strstr(g_bad, want) != NULL) {
		g_detected++;
		return;
	}
	g_failed++;
	printf("SELFCHECK BAD injected \"%s\": verify reported %s (%ld problems)\n", want, g_nbad ? g_bad : "nothing",
	       g_nbad);
}

static void expect_ok(const char *after) {
	verify();
	if (g_nbad != 0) {
		g_failed++;
		printf("SELFCHECK BAD after repairing \"%s\": %s (%ld problems)\n", after, g_bad, g_nbad);
	}
}

static size_t find(const uint64_t *tab, size_t n, int written) {
	for (size_t k = 0; k < n; k++) {
		size_t i = (size_t)(rnd() % n);
		if ((tab[i] != 0) == written)
			return i;
	}
	for (size_t i = 0; i < n; i++)
		if ((tab[i] != 0) == written)
			return i;
	errno = ENOENT;
	die("selfcheck: no page in the wanted state");
	return 0;
}

static int selfcheck(void) {
	static uint64_t saved[WPP], other[WPP];
	char want[128];
	uint64_t last = 0;
	pid_t self = getpid();

	for (int i = 0; i < 200000; i++) {
		op();
		if ((i & 7) == 0)
			xw_poll();
		if ((i & 63) == 0 && serve_once(self, (uint64_t)(uintptr_t)&g_req, &last) < 0)
			die("serve self");
	}
	const unsigned long long *counts = &g_n.ops;
	static const char *names[] = {"ops", "mainw", "mainz", "bigz", "rdr", "rdz", "fpw", "fpz", "slotw", "slotz",
	                              "mmap", "munmap", "mremap_move", "mremap_inplace", "mprotect", "punch",
	                              "sbrk", "unsbrk", "brkw", "xwreq", "xwdone"};
	for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
		if (counts[k] == 0) {
			g_failed++;
			printf("SELFCHECK BAD operation %s never ran\n", names[k]);
		}
	report();
	if (g_nbad != 0)
		return 1;

	// main: stale page (an older copy put back)
	size_t i = find(g_main_tab, g_nmain, 1);
	memcpy(saved, g_main + i * WPP, PG);
	main_write_at(i);
	memcpy(g_main + i * WPP, saved, PG);
	snprintf(want, sizeof want, "main %zu stale", i);
	expect(want);
	put_page(g_main + i * WPP, R_MAIN, i, g_main_tab[i]);
	expect_ok(want);

	// main: torn page (first half of the next generation)
	i = find(g_main_tab, g_nmain, 1);
	put_page(other, R_MAIN, i, g_main_tab[i] + 1);
	memcpy(g_main + i * WPP, other, PG / 2);
	snprintf(want, sizeof want, "main %zu torn", i);
	expect(want);
	put_page(g_main + i * WPP, R_MAIN, i, g_main_tab[i]);
	expect_ok(want);

	// main: missed zap (the content before the zap put back)
	i = find(g_main_tab, g_nmain, 1);
	memcpy(saved, g_main + i * WPP, PG);
	main_zap_at(i, 1);
	memcpy(g_main + i * WPP, saved, PG);
	snprintf(want, sizeof want, "main %zu missed zap", i);
	expect(want);
	main_zap_at(i, 1);
	expect_ok(want);

	// main: lost write (a zap the table does not know of)
	i = find(g_main_tab, g_nmain, 1);
	if (madvise(g_main + i * WPP, PG, MADV_DONTNEED) != 0)
		die("madvise");
	snprintf(want, sizeof want, "main %zu lost write", i);
	expect(want);
	put_page(g_main + i * WPP, R_MAIN, i, g_main_tab[i]);
	expect_ok(want);

	// rd: stale page (the file page that an earlier read(2) brought)
	i = find(g_rd_tab, NRD, 1);
	memcpy(saved, g_rd + i * WPP, PG);
	rd_read_at(i, 1, (g_rd_tab[i] - 1 + 1 + rnd() % (NRDFILE - 1)) % NRDFILE);
	memcpy(g_rd + i * WPP, saved, PG);
	snprintf(want, sizeof want, "rd %zu stale", i);
	expect(want);
	rd_read_at(i, 1, g_rd_tab[i] - 1);
	expect_ok(want);

	// rd: missed zap
	i = find(g_rd_tab, NRD, 1);
	memcpy(saved, g_rd + i * WPP, PG);
	if (madvise(g_rd + i * WPP, PG, MADV_DONTNEED) != 0)
		die("madvise");
	g_rd_tab[i] = 0;
	memcpy(g_rd + i * WPP, saved, PG);
	snprintf(want, sizeof want, "rd %zu missed zap", i);
	expect(want);
	if (madvise(g_rd + i * WPP, PG, MADV_DONTNEED) != 0)
		die("madvise");
	expect_ok(want);

	// xw: let the request in flight complete, then post one the writer
	// has not served yet
	while (g_pend) {
		if (serve_once(self, (uint64_t)(uintptr_t)&g_req, &last) < 0)
			die("serve self");
		xw_poll();
	}
	xw_poll();
	if (!g_pend) {
		errno = EINVAL;
		die("selfcheck: no request posted");
	}
	// a committed page: stale
	for (i = 0; i < NXW; i++) {
		int inreq = 0;
		for (int k = 0; k < XK; k++)
			inreq |= g_req.idx[k] == i;
		if (!inreq)
			break;
	}
	memcpy(saved, g_xw + i * WPP, PG);
	put_page(g_xw + i * WPP, R_XW, i, g_xw_tab[i] - 1);
	snprintf(want, sizeof want, "xw %zu stale", i);
	expect(want);
	memcpy(g_xw + i * WPP, saved, PG);
	expect_ok(want);
	// a page in flight: half old, half new is fine; a third sequence is not
	i = g_req.idx[0];
	memcpy(saved, g_xw + i * WPP, PG);
	put_page(other, R_XW, i, g_req.seq[0]);
	memcpy(g_xw + i * WPP + WPP / 2, other + WPP / 2, PG / 2);
	expect_ok("xw page in flight, half written");
	if (g_xwmixed != 1) {
		g_failed++;
		printf("SELFCHECK BAD half-written xw page %zu not counted as mixed (xwmixed=%d)\n", i, g_xwmixed);
	}
	put_page(g_xw + i * WPP, R_XW, i, g_req.seq[0] + 1000);
	snprintf(want, sizeof want, "xw %zu torn", i);
	expect(want);
	memcpy(g_xw + i * WPP, saved, PG);
	expect_ok(want);
	if (serve_once(self, (uint64_t)(uintptr_t)&g_req, &last) <= 0)
		die("serve self");
	xw_poll();
	if (g_pend) {
		errno = EINVAL;
		die("selfcheck: served request not committed");
	}
	expect_ok("xw request served");

	// slots: stale page, a mapping gone, wrong permissions
	struct slot *s = NULL;
	int sn = 0;
	for (int k = 0; k < NSLOT && s == NULL; k++)
		if (g_slot[k].used && !g_slot[k].ro) {
			s = &g_slot[k];
			sn = k;
		}
	if (s == NULL) {
		slot_map_at(&g_slot[0], 8);
		s = &g_slot[0];
		sn = 0;
	}
	size_t p = rnd() % s->n;
	slot_page(s, p);
	memcpy(saved, s->a + p * WPP, PG);
	slot_page(s, p);
	memcpy(s->a + p * WPP, saved, PG);
	snprintf(want, sizeof want, "map slot %d page %zu stale", sn, p);
	expect(want);
	slot_page(s, p);
	expect_ok(want);

	if (mprotect(s->a, s->n * PG, PROT_READ) != 0)
		die("mprotect");
	snprintf(want, sizeof want, "has perms r--p, want rw-p");
	expect(want);
	if (mprotect(s->a, s->n * PG, PROT_READ | PROT_WRITE) != 0)
		die("mprotect");
	expect_ok(want);

	if (munmap(s->a, s->n * PG) != 0)
		die("munmap");
	snprintf(want, sizeof want, "map slot %d: no mapping at %#lx", sn, (unsigned long)(uintptr_t)s->a);
	expect(want);
	if (mmap(s->a, s->n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != s->a)
		die("mmap");
	for (p = 0; p < s->n; p++)
		if (s->gen[p] != 0)
			put_page(s->a + p * WPP, R_MAP, s->uid * SLOTMAX + p, s->gen[p]);
	s->split = 1;
	expect_ok(want);

	// brk: top moved behind the table's back, a chunk word changed
	if (sbrk(4096) == (void *)-1)
		die("sbrk");
	expect("brk top is");
	if (sbrk(-4096) == (void *)-1)
		die("sbrk");
	expect_ok("brk top");
	while (g_nbc == 0)
		brk_op();
	int c = (int)(rnd() % (uint64_t)g_nbc);
	g_bc[c].p[g_bc[c].words / 2] ^= 0x40;
	snprintf(want, sizeof want, "brk chunk %d word %zu", c, g_bc[c].words / 2);
	expect(want);
	g_bc[c].p[g_bc[c].words / 2] ^= 0x40;
	expect_ok(want);

	// fp: missed zap (a private copy put back where the file shows through)
	i = rnd() % NFP;
	fp_write_at(i);
	memcpy(saved, g_fp + i * WPP, PG);
	fp_zap_at(i, 1);
	memcpy(g_fp + i * WPP, saved, PG);
	snprintf(want, sizeof want, "fp %zu missed zap", i);
	expect(want);
	fp_zap_at(i, 1);
	expect_ok(want);

	// fp: stale private copy
	fp_write_at(i);
	memcpy(saved, g_fp + i * WPP, PG);
	fp_write_at(i);
	memcpy(g_fp + i * WPP, saved, PG);
	snprintf(want, sizeof want, "fp %zu stale", i);
	expect(want);
	fp_write_at(i);
	expect_ok(want);

	// files on disk must not change (page i of fp is a private copy now)
	const char *paths[] = {g_fppath, g_rdpath};
	const char *fnames[] = {"fpfile", "rdfile"};
	for (int k = 0; k < 2; k++) {
		int fd = open(paths[k], O_RDWR | O_CLOEXEC);
		unsigned char b;
		off_t at = (off_t)(k == 0 ? i * PG + 100 : 7 * PG + 100);
		if (fd < 0 || pread(fd, &b, 1, at) != 1)
			die("open file");
		b ^= 1;
		if (pwrite(fd, &b, 1, at) != 1)
			die("pwrite");
		snprintf(want, sizeof want, "%s page %zu changed on disk", fnames[k], k == 0 ? i : (size_t)7);
		expect(want);
		b ^= 1;
		if (pwrite(fd, &b, 1, at) != 1)
			die("pwrite");
		close(fd);
		expect_ok(want);
	}

	for (int k = 0; k < 20000; k++)
		op();
	report();
	if (g_nbad != 0)
		g_failed++;
	if (g_failed)
		printf("SELFCHECK BAD %d failures\n", g_failed);
	else
		printf("SELFCHECK OK detected=%d\n", g_detected);
	fflush(stdout);
	return g_failed ? 1 : 0;
}

int main(int argc, char **argv) {
	// stdio must never call malloc: malloc would move brk under the chunks
	setvbuf(stdout, g_outbuf, _IOLBF, sizeof g_outbuf);
	if (argc == 4 && strcmp(argv[1], "writer") == 0)
		return writer_main((pid_t)atoi(argv[2]), strtoull(argv[3], NULL, 0));
	if (argc == 3 && strcmp(argv[1], "selfcheck") == 0) {
		setup(4, argv[2], 0);
		return selfcheck();
	}
	if ((argc != 4 && argc != 5) || strcmp(argv[1], "run") != 0 || (argc == 5 && strcmp(argv[4], "thp") != 0)) {
		fprintf(stderr, "usage: churn run MIB DIR [thp] | churn selfcheck DIR | churn writer PID ADDR\n");
		return 2;
	}
	setup((size_t)atol(argv[2]), argv[3], argc == 5);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		die("sigaction");
	sa.sa_handler = NULL;
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
	if (sigaction(SIGSEGV, &sa, NULL) != 0 || sigaction(SIGBUS, &sa, NULL) != 0)
		die("sigaction");

	verify();
	if (g_nbad != 0) {
		printf("CHURN FAILED setup verify: %s\n", g_bad);
		return 1;
	}
	printf("READY pid=%d main=%#lx mainpages=%zu xwreq=%#lx xw=%#lx xwpages=%lu rd=%#lx fp=%#lx seed=%#llx\n",
	       (int)getpid(), (unsigned long)(uintptr_t)g_main, g_nmain, (unsigned long)(uintptr_t)&g_req,
	       (unsigned long)(uintptr_t)g_xw, NXW, (unsigned long)(uintptr_t)g_rd, (unsigned long)(uintptr_t)g_fp,
	       (unsigned long long)g_seed);
	fflush(stdout);

	for (;;) {
		op();
		if ((g_n.ops & 7) == 0)
			xw_poll();
		if (g_usr1) {
			g_usr1 = 0;
			report();
		}
	}
}
