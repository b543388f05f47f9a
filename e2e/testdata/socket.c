// socket: a process holding a connected AF_UNIX socket pair on fds 7 and 8
// (crbpf must refuse it untouched, naming the fd).
//
// Prints "READY socketfd=7 peerfd=8", then "TICK n" every 200 ms. On SIGUSR1
// it sends a message through fd 7, reads it back from fd 8 and prints
// "SELFCHECK OK socket roundtrips=<n>" or "SELFCHECK BAD <what>".
// Usage: socket [selfcheck]
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SOCKFD 7
#define PEERFD 8

static volatile sig_atomic_t g_usr1;
static int g_roundtrips;

static void on_usr1(int sig) {
	(void)sig;
	g_usr1 = 1;
}

static int check(void) {
	char msg[64], got[64];
	int n = snprintf(msg, sizeof msg, "ping %d", g_roundtrips + 1);
	if (write(SOCKFD, msg, (size_t)n) != n) {
		printf("SELFCHECK BAD write fd %d: %s\n", SOCKFD, strerror(errno));
		fflush(stdout);
		return 0;
	}
	ssize_t r = read(PEERFD, got, sizeof got);
	if (r != n || memcmp(got, msg, (size_t)n) != 0) {
		printf("SELFCHECK BAD read fd %d returned %zd: %s\n", PEERFD, r, r < 0 ? strerror(errno) : "");
		fflush(stdout);
		return 0;
	}
	g_roundtrips++;
	printf("SELFCHECK OK socket roundtrips=%d\n", g_roundtrips);
	fflush(stdout);
	return 1;
}

int main(int argc, char **argv) {
	int self = argc > 1 && strcmp(argv[1], "selfcheck") == 0;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 ||
	    dup3(sv[0], SOCKFD, O_CLOEXEC) < 0 || dup3(sv[1], PEERFD, O_CLOEXEC) < 0) {
		printf("SETUP FAILED socketpair: %s\n", strerror(errno));
		return 1;
	}
	close(sv[0]);
	close(sv[1]);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	printf("READY socketfd=%d peerfd=%d\n", SOCKFD, PEERFD);
	fflush(stdout);
	if (self)
		return check() ? 0 : 1;
	for (long n = 1;; n++) {
		if (g_usr1) {
			g_usr1 = 0;
			check();
		}
		printf("TICK %ld\n", n);
		fflush(stdout);
		struct timespec ts = {0, 200 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}
