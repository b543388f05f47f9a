//go:build ignore

// dirtier: the target of the pre-copy benchmark (go run ./bench).
//
// Usage: dirtier RESIDENT_MIB HOT_MIB RATE_MIB_S
//
// It maps RESIDENT_MIB of anonymous memory and fills every page with a
// non-zero pattern, prints "READY <pid>", then runs a tight loop until
// stdin reaches end of file, "X" arrives, or MAX_LIFETIME passes. Each
// iteration
//   - reads CLOCK_MONOTONIC and keeps the largest gap between consecutive
//     iterations (and when it began): a stop by a checkpointer shows up as
//     one long gap, as the process itself experiences it;
//   - dirties pages of the first HOT_MIB of the region round-robin, as many
//     as RATE_MIB_S asks for by now (one 8-byte store per page, at most
//     PER_ITER pages per iteration; debt beyond MAX_DEBT_MS is dropped, so
//     a long stop is not followed by a long burst). Round-robin makes the
//     number of distinct pages written in any window of T seconds exactly
//     min(RATE*T, HOT);
//   - counts iterations, pages written and the time spent writing them in
//     1 ms buckets of CLOCK_MONOTONIC, so that the throughput of any window
//     can be asked for afterwards.
// Every millisecond it polls stdin (non-blocking) for commands, one a line,
// answered with one line on stdout (times are CLOCK_MONOTONIC nanoseconds):
//   R          reset the window: "R <now>"
//   Q          the window so far: "Q <start> <now> <iters> <pages> <max_gap> <max_gap_at>"
//   G          the gaps of at least 1 ms in the window (the 512 largest):
//              "G <gap> <at> <gap> <at> ..."
//   C <t0> <t1>  sums of the buckets in [t0, t1):
//              "C <iters> <pages> <write_ns> <buckets>"
//   X          exit
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define PER_ITER 16
#define MAX_DEBT_MS 20
#define MAX_LIFETIME_S 1800
#define NBUCKETS (MAX_LIFETIME_S * 1000)
#define GAP_MIN 1000000 /* ns */
#define NGAPS 512

/* The gaps of at least GAP_MIN since the last reset (the NGAPS largest), to
 * tell a checkpoint's stops (arming, freeze) from being scheduled out. */
static uint64_t gap_len[NGAPS], gap_at[NGAPS];
static int ngaps;

static void note_gap(uint64_t len, uint64_t at) {
	int i = ngaps;
	if (ngaps == NGAPS) {
		/* Full: replace the smallest, if this one is larger. */
		i = 0;
		for (int k = 1; k < NGAPS; k++)
			if (gap_len[k] < gap_len[i])
				i = k;
		if (gap_len[i] >= len)
			return;
	} else {
		ngaps++;
	}
	gap_len[i] = len;
	gap_at[i] = at;
}

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
	fprintf(stderr, "dirtier: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void reply(const char *buf, int n) {
	while (n > 0) {
		ssize_t w = write(1, buf, n);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			exit(0); /* the benchmark is gone */
		}
		buf += w;
		n -= w;
	}
}

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: dirtier RESIDENT_MIB HOT_MIB RATE_MIB_S\n");
		return 2;
	}
	uint64_t resident = strtoull(argv[1], 0, 10) << 20;
	uint64_t hot = strtoull(argv[2], 0, 10) << 20;
	double rate = strtod(argv[3], 0); /* MiB/s */
	if (resident == 0 || hot == 0 || hot > resident || rate < 0) {
		fprintf(stderr, "dirtier: need 0 < HOT_MIB <= RESIDENT_MIB and RATE_MIB_S >= 0\n");
		return 2;
	}
	/* Only stdin, stdout and stderr: crbpf refuses other pipes, and a
	 * shell may leave some open without close-on-exec. */
	close_range(3, ~0u, 0);
	uint64_t hot_pages = hot / PAGE;
	double pages_per_ns = rate * (1 << 20) / PAGE / 1e9;
	uint64_t max_debt = (uint64_t)(pages_per_ns * MAX_DEBT_MS * 1e6) + PER_ITER;

	uint64_t *mem = mmap(0, resident, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap region");
	for (uint64_t i = 0; i < resident / 8; i++)
		mem[i] = 0x9e3779b97f4a7c15ull * (i + 1) | 1;
	/* The buckets are touched now, not while measuring. */
	size_t bsz = (size_t)NBUCKETS * sizeof(uint32_t);
	uint32_t *b_iters = mmap(0, 3 * bsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (b_iters == MAP_FAILED)
		die("mmap buckets");
	uint32_t *b_pages = b_iters + NBUCKETS, *b_wns = b_pages + NBUCKETS;
	memset(b_iters, 0, 3 * bsz);

	if (fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK) < 0)
		die("stdin non-blocking");
	static char line[NGAPS * 42 + 64];
	char in[4096];
	int inlen = 0;
	int n = snprintf(line, sizeof line, "READY %d\n", (int)getpid());
	reply(line, n);

	uint64_t t_start = now_ns(), prev = t_start, rate_t0 = t_start;
	uint64_t done = 0, pos = 0, seq = 1, next_poll = t_start;
	uint64_t win_t0 = t_start, win_iters = 0, win_pages = 0, max_gap = 0, max_gap_at = t_start;
	for (;;) {
		uint64_t now = now_ns();
		uint64_t gap = now - prev;
		prev = now;
		if (gap > max_gap) {
			max_gap = gap;
			max_gap_at = now - gap;
		}
		if (gap >= GAP_MIN)
			note_gap(gap, now - gap);
		uint64_t b = (now - t_start) / 1000000;
		if (b >= NBUCKETS)
			return 0;
		b_iters[b]++;
		win_iters++;
		if (pages_per_ns > 0) {
			uint64_t due = (uint64_t)((double)(now - rate_t0) * pages_per_ns);
			if (due > done + max_debt)
				done = due - max_debt;
			uint64_t k = due - done;
			if (k > PER_ITER)
				k = PER_ITER;
			if (k > 0) {
				for (uint64_t i = 0; i < k; i++) {
					mem[pos * (PAGE / 8) + (seq & (PAGE / 8 - 1))] = seq | (1ull << 63);
					seq++;
					if (++pos == hot_pages)
						pos = 0;
				}
				done += k;
				win_pages += k;
				b_pages[b] += k;
				b_wns[b] += (uint32_t)(now_ns() - now);
			}
		}
		if (now < next_poll)
			continue;
		next_poll = now + 1000000;
		ssize_t r = read(0, in + inlen, sizeof in - 1 - inlen);
		if (r == 0)
			return 0; /* the benchmark closed our stdin */
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			die("read stdin");
		}
		inlen += r;
		char *nl;
		while ((nl = memchr(in, '\n', inlen)) != 0) {
			*nl = 0;
			uint64_t t = now_ns();
			n = 0;
			switch (in[0]) {
			case 'R':
				win_t0 = t;
				win_iters = win_pages = max_gap = 0;
				max_gap_at = t;
				ngaps = 0;
				n = snprintf(line, sizeof line, "R %llu\n", (unsigned long long)t);
				break;
			case 'Q':
				n = snprintf(line, sizeof line, "Q %llu %llu %llu %llu %llu %llu\n",
				             (unsigned long long)win_t0, (unsigned long long)t,
				             (unsigned long long)win_iters, (unsigned long long)win_pages,
				             (unsigned long long)max_gap, (unsigned long long)max_gap_at);
				break;
			case 'G':
				n = snprintf(line, sizeof line, "G");
				for (int i = 0; i < ngaps; i++)
					n += snprintf(line + n, sizeof line - n, " %llu %llu",
					              (unsigned long long)gap_len[i], (unsigned long long)gap_at[i]);
				n += snprintf(line + n, sizeof line - n, "\n");
				break;
			case 'C': {
				unsigned long long t0 = 0, t1 = 0, si = 0, sp = 0, sw = 0, nb = 0;
				sscanf(in + 1, "%llu %llu", &t0, &t1);
				uint64_t b0 = t0 > t_start ? (t0 - t_start) / 1000000 : 0;
				uint64_t b1 = t1 > t_start ? (t1 - t_start) / 1000000 : 0;
				for (uint64_t i = b0; i < b1 && i < NBUCKETS; i++, nb++) {
					si += b_iters[i];
					sp += b_pages[i];
					sw += b_wns[i];
				}
				n = snprintf(line, sizeof line, "C %llu %llu %llu %llu\n", si, sp, sw, nb);
				break;
			}
			case 'X':
				return 0;
			default:
				n = snprintf(line, sizeof line, "E unknown command\n");
			}
			reply(line, n);
			inlen -= nl + 1 - in;
			memmove(in, nl + 1, inlen);
			/* The reply is not part of the loop's timing. */
			prev = now_ns();
		}
		if (inlen == sizeof in - 1)
			inlen = 0;
	}
}
