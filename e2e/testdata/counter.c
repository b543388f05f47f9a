// counter: prints "COUNT n" (n = 1, 2, ...) every 20 ms.
//
// The count lives in three places (a .data global, a heap cell and a stack
// variable) plus a running sum in .bss; every line first checks that they
// agree, so a restore that loses or mixes up memory prints
// "COUNT BAD <what>" and exits 1 instead of counting on.
//
// Usage: counter            count forever
//        counter selfcheck  print COUNT 1..5, then "SELFCHECK OK", exit 0
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile uint64_t g_count = 0;   // .bss
static volatile uint64_t g_sum;         // .bss: 1 + 2 + ... + g_count
static volatile uint64_t g_magic = 0xC0FFEE0DDBA11ULL; // .data

int main(int argc, char **argv) {
	int selfcheck = argc > 1 && strcmp(argv[1], "selfcheck") == 0;
	volatile uint64_t *heap = malloc(sizeof *heap);
	volatile uint64_t local = 0;
	if (heap == NULL) {
		printf("COUNT BAD malloc\n");
		return 1;
	}
	*heap = 0;
	for (;;) {
		if (g_magic != 0xC0FFEE0DDBA11ULL) {
			printf("COUNT BAD data magic=%#llx\n", (unsigned long long)g_magic);
			return 1;
		}
		if (*heap != g_count || local != g_count || g_sum != g_count * (g_count + 1) / 2) {
			printf("COUNT BAD global=%llu heap=%llu stack=%llu sum=%llu\n",
			       (unsigned long long)g_count, (unsigned long long)*heap,
			       (unsigned long long)local, (unsigned long long)g_sum);
			fflush(stdout);
			return 1;
		}
		g_count++;
		*heap += 1;
		local += 1;
		g_sum += g_count;
		printf("COUNT %llu\n", (unsigned long long)g_count);
		fflush(stdout);
		if (selfcheck && g_count == 5) {
			printf("SELFCHECK OK\n");
			return 0;
		}
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}
