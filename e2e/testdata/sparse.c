// sparse: maps 256 MiB of anonymous memory, touches one page of it and
// sleeps, printing TICK n each 100 ms. A checkpoint must not make it use
// the rest (reading never-populated pages would allocate them).
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>

int main(void) {
	size_t len = 256UL << 20;
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	m[len / 2] = 1;
	printf("READY %p\n", (void *)m);
	fflush(stdout);
	for (long n = 1;; n++) {
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
		m[len / 2]++;
		printf("TICK %ld\n", n);
		fflush(stdout);
	}
}
