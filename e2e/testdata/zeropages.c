// zeropages: pages that are written, then zeroed, in a private file mapping
// and in private anonymous memory, for the tests of how checkpoints store
// (or rather do not store) all-zero pages.
//
// It creates DIR/data, 16 pages in which every byte is non-zero (byte off of
// page p is (p*31 + off) % 251 + 1), maps it MAP_PRIVATE and read-write
// (the fd is closed right after mmap), maps 16 pages of private anonymous
// memory, prints "READY file=0x... anon=0x..." and then idles (10 ms
// sleeps), acting on signals:
//
//   SIGUSR1  advance to the next step, apply it, print "STEP n"
//   SIGUSR2  check both mappings and DIR/data on disk against what the
//            current step says they hold; print "CHECK OK step=n" or
//            "CHECK BAD step=n <what>"
//
// Pages 0-15 of both mappings hold their base content (the file's bytes in
// the file mapping, zero in the anonymous one) unless a step wrote them:
//
//   step 1   pages 0-3 := pattern(gen 1)
//   step 2   page 0 := zero (memset, stays mapped), page 2 := pattern(gen 2);
//            pages 1 and 3 keep pattern(gen 1)
//   step n   (n >= 3) pages 0, 2 and 5 := pattern(gen n)
//
// pattern(gen) byte off of page p is (gen*101 + p*13 + off*7) % 241 + 3:
// never zero, and unlike the file's content. Pages 4-15 of the file
// mapping are never written before step 3 (they are the file's content),
// anonymous pages 4-15 never touched. The step number is kept in memory
// and the check derives every page's content from it alone, so a restored
// copy checks itself. DIR/data itself must never change: the mapping is
// private.
//
// Usage: zeropages DIR
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define NPAGES 16

static volatile sig_atomic_t got_usr1, got_usr2;
static int step; // the last step applied
static unsigned char *filemap, *anonmap;
static char path[4096];

static void on_signal(int sig) {
	if (sig == SIGUSR1)
		got_usr1 = 1;
	else
		got_usr2 = 1;
}

static unsigned char file_byte(int page, int off) { return (page * 31 + off) % 251 + 1; }

static unsigned char pattern_byte(int gen, int page, int off) {
	return (gen * 101 + page * 13 + off * 7) % 241 + 3;
}

// page_gen says what page holds at step s: a generation of the pattern
// (> 0), 0 for its base content, or -1 for zero.
static int page_gen(int s, int page) {
	if (s >= 3 && (page == 0 || page == 2 || page == 5))
		return s;
	if (page > 3 || s < 1)
		return 0;
	if (s >= 2 && page == 0)
		return -1;
	if (s >= 2 && page == 2)
		return 2;
	return 1;
}

static unsigned char want_byte(int isfile, int s, int page, int off) {
	int gen = page_gen(s, page);
	if (gen > 0)
		return pattern_byte(gen, page, off);
	if (gen < 0 || !isfile)
		return 0;
	return file_byte(page, off);
}

static void fill(unsigned char *p, int gen, int page) {
	for (int off = 0; off < PAGE; off++)
		p[off] = pattern_byte(gen, page, off);
}

static void apply(int s) {
	unsigned char *maps[2] = {filemap, anonmap};
	for (int m = 0; m < 2; m++) {
		for (int page = 0; page < NPAGES; page++) {
			unsigned char *p = maps[m] + page * PAGE;
			int gen = page_gen(s, page);
			if (gen == page_gen(s - 1, page))
				continue;
			if (gen < 0)
				memset(p, 0, PAGE);
			else if (gen > 0)
				fill(p, gen, page);
		}
	}
}

// check prints CHECK OK or the first difference.
static void check(void) {
	const char *names[2] = {"file", "anon"};
	unsigned char *maps[2] = {filemap, anonmap};
	for (int m = 0; m < 2; m++) {
		for (int page = 0; page < NPAGES; page++) {
			for (int off = 0; off < PAGE; off++) {
				unsigned char got = maps[m][page * PAGE + off];
				unsigned char want = want_byte(m == 0, step, page, off);
				if (got != want) {
					printf("CHECK BAD step=%d %s page %d off %d: got %u, want %u\n",
					       step, names[m], page, off, got, want);
					return;
				}
			}
		}
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		printf("CHECK BAD step=%d open %s: %m\n", step, path);
		return;
	}
	static unsigned char buf[PAGE];
	for (int page = 0; page < NPAGES; page++) {
		if (pread(fd, buf, PAGE, (off_t)page * PAGE) != PAGE) {
			printf("CHECK BAD step=%d short read of %s page %d\n", step, path, page);
			close(fd);
			return;
		}
		for (int off = 0; off < PAGE; off++) {
			if (buf[off] != file_byte(page, off)) {
				printf("CHECK BAD step=%d %s changed: page %d off %d: got %u, want %u\n",
				       step, path, page, off, buf[off], file_byte(page, off));
				close(fd);
				return;
			}
		}
	}
	char extra;
	if (pread(fd, &extra, 1, (off_t)NPAGES * PAGE) != 0)
		printf("CHECK BAD step=%d %s grew\n", step, path);
	else
		printf("CHECK OK step=%d\n", step);
	close(fd);
}

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: zeropages DIR\n");
		return 2;
	}
	snprintf(path, sizeof path, "%s/data", argv[1]);

	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	static unsigned char buf[PAGE];
	for (int page = 0; page < NPAGES; page++) {
		for (int off = 0; off < PAGE; off++)
			buf[off] = file_byte(page, off);
		if (write(fd, buf, PAGE) != PAGE) {
			perror("write");
			return 1;
		}
	}
	filemap = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (filemap == MAP_FAILED) {
		perror("mmap file");
		return 1;
	}
	close(fd);
	anonmap = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (anonmap == MAP_FAILED) {
		perror("mmap anon");
		return 1;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0 || sigaction(SIGUSR2, &sa, NULL) != 0) {
		perror("sigaction");
		return 1;
	}

	printf("READY file=%p anon=%p\n", (void *)filemap, (void *)anonmap);
	fflush(stdout);
	for (;;) {
		if (got_usr1) {
			got_usr1 = 0;
			step++;
			apply(step);
			printf("STEP %d\n", step);
			fflush(stdout);
		}
		if (got_usr2) {
			got_usr2 = 0;
			check();
			fflush(stdout);
		}
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}
