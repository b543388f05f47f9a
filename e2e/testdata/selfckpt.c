// selfckpt: checkpoints itself through the crbpf daemon (socket in argv[1])
// with the C helper and says which side of the fork()-like call it is on:
// "ORIGINAL crid=N" or "RESTORED from=N", then TICK n every 100 ms.
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "../../client/c/crbpf_self.h"

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: selfckpt SOCKET\n");
		return 2;
	}
	long state = 12345; /* must survive the restore */
	printf("BEFORE pid=%d\n", getpid());
	fflush(stdout);
	unsigned long long from = 0;
	long long crid = crbpf_checkpoint_self(argv[1], NULL, &from);
	if (crid < 0) {
		printf("ERROR %s\n", crbpf_self_error());
		return 1;
	}
	if (crid > 0)
		printf("ORIGINAL crid=%lld state=%ld\n", crid, state);
	else
		printf("RESTORED from=%llu state=%ld\n", from, state);
	fflush(stdout);
	for (long n = 1;; n++) {
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
		printf("TICK %ld\n", n);
		fflush(stdout);
	}
}
