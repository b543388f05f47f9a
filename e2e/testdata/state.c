// state: per-task kernel state that must survive a restore, reported by the
// process itself.
//
// Usage: state DIR [selfcheck]
//   DIR must exist and be empty; state creates DIR/wd (its cwd) and, in DIR,
//   the files "ro" ("0123456789abcdef"), "append" ("before\n") and "rw"
//   (200 bytes of '.').
//
// Setup, in this order:
//   cwd DIR/wd; umask 027; RLIMIT_NOFILE 200/4000 (soft < hard, hard lowered);
//   RLIMIT_CORE 12288/1048576; personality |= ADDR_NO_RANDOMIZE;
//   prctl(PR_SET_NAME, "statetgt");
//   fds: 3 DIR/ro O_RDONLY at offset 5; 4 DIR/append O_WRONLY|O_APPEND;
//        5 DIR/rw O_RDWR|O_CLOEXEC at offset 100; 6 DIR O_RDONLY|O_DIRECTORY;
//        7 /dev/zero O_RDONLY; 9 /dev/null O_RDWR; 8 stays closed;
//   SIGALRM handler + ITIMER_REAL every 300 ms;
//   SIGRTMIN handler (SA_SIGINFO) + POSIX timer (CLOCK_MONOTONIC,
//   SIGEV_SIGNAL SIGRTMIN, sigev_value 0x1234) every 250 ms, created after
//   three throwaway timers so that its id (3) is not the one a fresh
//   process's first timer_create returns; the handler
//   counts ticks and, separately, signals whose si_code is not SI_TIMER,
//   whose si_value is not 0x1234 or whose si_timerid is not the saved id;
//   SIGUSR2 blocked, with a SA_SIGINFO handler, and queued to itself with
//   sigqueue value 77 (so it is pending).
//
// Output (one line each, flushed):
//   READY pid=<pid>
//   on SIGUSR1 (observes, changes nothing):
//     STATE cwd=<getcwd> umask=<Umask of /proc/self/status> nofile=<cur>/<max>
//       core=<cur>/<max> pers=<hex> comm=<comm> itticks=<n> it_int_us=<n>
//       it_val_ok=<0|1> ptid=<saved id> pt_gettime=<0|1> pt_int_ns=<n>
//       pt_val_ok=<0|1> ptticks=<n> ptbad=<n> usr2pend=<0|1> usr2blocked=<0|1>
//       fdN.off=<lseek> fdN.fl=<F_GETFL hex> fdN.cx=<FD_CLOEXEC 0|1>
//       fdN.link=<readlink /proc/self/fd/N>   for N in 3 4 5 6 7 9
//       fd8=<closed|open>
//   on SIGHUP (acts once): reads 3 bytes from fd 3, writes "after\n" to
//   fd 4, unblocks SIGUSR2 and reports what the handler saw:
//     ACT read3=<bytes> append=<0|1> usr2=<times delivered> usr2val=<n>
//       usr2code=<n> usr2pid=<n>
// With "selfcheck" it sets up, raises SIGUSR1, waits for 2 ticks of each
// timer, raises SIGHUP, checks the lines it printed and prints
// "SELFCHECK OK" (or "SELFCHECK BAD <what>") and exits.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PT_VALUE 0x1234
#define USR2_VALUE 77

static const int g_fds[] = {3, 4, 5, 6, 7, 9};
#define NFDS (int)(sizeof g_fds / sizeof g_fds[0])

static volatile sig_atomic_t g_usr1, g_hup;
static volatile long g_itticks, g_ptticks, g_ptbad;
static volatile int g_usr2, g_usr2val, g_usr2code, g_usr2pid;
static timer_t g_timer;

static void die(const char *what) {
	printf("SETUP FAILED %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(1);
}

static void on_alrm(int sig) {
	(void)sig;
	g_itticks++;
}

static void on_rt(int sig, siginfo_t *si, void *uc) {
	(void)sig;
	(void)uc;
	g_ptticks++;
	if (si->si_code != SI_TIMER || si->si_value.sival_int != PT_VALUE ||
	    si->si_timerid != (int)(intptr_t)g_timer)
		g_ptbad++;
}

static void on_usr2(int sig, siginfo_t *si, void *uc) {
	(void)sig;
	(void)uc;
	g_usr2++;
	g_usr2val = si->si_value.sival_int;
	g_usr2code = si->si_code;
	g_usr2pid = si->si_pid;
}

static void on_usr1(int sig) {
	(void)sig;
	g_usr1 = 1;
}

static void on_hup(int sig) {
	(void)sig;
	g_hup = 1;
}

static void handle(int sig, void (*fn)(int)) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) != 0)
		die("sigaction");
}

static void handle_info(int sig, void (*fn)(int, siginfo_t *, void *)) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = fn;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) != 0)
		die("sigaction");
}

// open_at opens path and moves it to fd want.
static void open_at(int want, const char *path, int flags, off_t off) {
	int fd = open(path, flags, 0644);
	if (fd < 0)
		die(path);
	if (fd != want) {
		if (dup3(fd, want, flags & O_CLOEXEC) != want)
			die("dup3");
		close(fd);
	}
	if (off && lseek(want, off, SEEK_SET) != off)
		die("lseek");
}

static void write_file(const char *path, const char *data, size_t len) {
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) != 0)
		die(path);
}

static void status_field(const char *key, char *out, size_t n) {
	snprintf(out, n, "?");
	FILE *f = fopen("/proc/self/status", "re");
	if (f == NULL)
		return;
	char line[256];
	size_t kl = strlen(key);
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			char *v = line + kl + 1;
			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = 0;
			snprintf(out, n, "%s", v);
			break;
		}
	}
	fclose(f);
}

static void report(void) {
	char cwd[4096], umask_s[32], comm[64] = "?";
	if (getcwd(cwd, sizeof cwd) == NULL)
		snprintf(cwd, sizeof cwd, "ERR:%d", errno);
	status_field("Umask", umask_s, sizeof umask_s);
	FILE *f = fopen("/proc/self/comm", "re");
	if (f) {
		if (fgets(comm, sizeof comm, f))
			comm[strcspn(comm, "\n")] = 0;
		fclose(f);
	}
	struct rlimit nofile, core;
	getrlimit(RLIMIT_NOFILE, &nofile);
	getrlimit(RLIMIT_CORE, &core);
	struct itimerval it;
	getitimer(ITIMER_REAL, &it);
	long it_int = it.it_interval.tv_sec * 1000000L + it.it_interval.tv_usec;
	long it_val = it.it_value.tv_sec * 1000000L + it.it_value.tv_usec;
	struct itimerspec ts;
	memset(&ts, 0, sizeof ts);
	int pt_ok = timer_gettime(g_timer, &ts) == 0;
	long pt_int = ts.it_interval.tv_sec * 1000000000L + ts.it_interval.tv_nsec;
	long pt_val = ts.it_value.tv_sec * 1000000000L + ts.it_value.tv_nsec;
	sigset_t pend, mask;
	sigpending(&pend);
	sigprocmask(SIG_BLOCK, NULL, &mask);

	printf("STATE cwd=%s umask=%s nofile=%llu/%llu core=%llu/%llu pers=%#x comm=%s "
	       "itticks=%ld it_int_us=%ld it_val_ok=%d ptid=%d pt_gettime=%d pt_int_ns=%ld pt_val_ok=%d "
	       "ptticks=%ld ptbad=%ld usr2pend=%d usr2blocked=%d",
	       cwd, umask_s, (unsigned long long)nofile.rlim_cur, (unsigned long long)nofile.rlim_max,
	       (unsigned long long)core.rlim_cur, (unsigned long long)core.rlim_max,
	       (unsigned)personality(0xffffffff), comm, g_itticks, it_int, it_val > 0 && it_val <= it_int,
	       (int)(intptr_t)g_timer, pt_ok, pt_int, pt_ok && pt_val > 0 && pt_val <= pt_int, g_ptticks,
	       g_ptbad, sigismember(&pend, SIGUSR2), sigismember(&mask, SIGUSR2));
	for (int i = 0; i < NFDS; i++) {
		int fd = g_fds[i];
		char path[64], link[4096];
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(path, link, sizeof link - 1);
		if (n < 0)
			snprintf(link, sizeof link, "ERR:%d", errno);
		else
			link[n] = 0;
		int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
		printf(" fd%d.off=%lld fd%d.fl=%#x fd%d.cx=%d fd%d.link=%s", fd, (long long)lseek(fd, 0, SEEK_CUR), fd,
		       fl, fd, fdfl < 0 ? -1 : !!(fdfl & FD_CLOEXEC), fd, link);
	}
	printf(" fd8=%s\n", fcntl(8, F_GETFD) < 0 && errno == EBADF ? "closed" : "open");
	fflush(stdout);
}

static void act(void) {
	char buf[4] = {0};
	ssize_t n = read(3, buf, 3);
	if (n < 0)
		snprintf(buf, sizeof buf, "E%d", errno);
	int app = write(4, "after\n", 6) == 6;
	sigset_t usr2;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	sigprocmask(SIG_UNBLOCK, &usr2, NULL); // the handler runs before this returns
	printf("ACT read3=%s append=%d usr2=%d usr2val=%d usr2code=%d usr2pid=%d\n", buf, app, g_usr2, g_usr2val,
	       g_usr2code, g_usr2pid);
	fflush(stdout);
	sigprocmask(SIG_BLOCK, &usr2, NULL);
}

static int selfcheck(void) {
	raise(SIGUSR1);
	// wait for 2 ticks of each timer
	long it0 = g_itticks, pt0 = g_ptticks;
	while (g_itticks < it0 + 2 || g_ptticks < pt0 + 2)
		pause();
	raise(SIGHUP);
	// the main loop is not running: handle both here
	if (!g_usr1 || !g_hup) {
		printf("SELFCHECK BAD handlers did not run\n");
		return 1;
	}
	report();
	act();
	const char *bad = NULL;
	if (g_ptbad)
		bad = "posix timer siginfo";
	else if (g_usr2 != 1 || g_usr2val != USR2_VALUE || g_usr2code != SI_QUEUE || g_usr2pid != getpid())
		bad = "queued SIGUSR2";
	if (bad) {
		printf("SELFCHECK BAD %s\n", bad);
		return 1;
	}
	printf("SELFCHECK OK\n");
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: state DIR [selfcheck]\n");
		return 2;
	}
	const char *dir = argv[1];
	int self = argc > 2 && strcmp(argv[2], "selfcheck") == 0;
	char p[4096];

	snprintf(p, sizeof p, "%s/wd", dir);
	if (mkdir(p, 0755) != 0 || chdir(p) != 0)
		die("cwd");
	umask(027);

	struct rlimit rl = {200, 4000};
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		die("RLIMIT_NOFILE");
	rl.rlim_cur = 12288;
	rl.rlim_max = 1048576;
	if (setrlimit(RLIMIT_CORE, &rl) != 0)
		die("RLIMIT_CORE");
	int pers = personality(0xffffffff);
	if (pers < 0 || personality(pers | ADDR_NO_RANDOMIZE) < 0)
		die("personality");
	if (prctl(PR_SET_NAME, "statetgt", 0, 0, 0) != 0)
		die("PR_SET_NAME");

	snprintf(p, sizeof p, "%s/ro", dir);
	write_file(p, "0123456789abcdef", 16);
	open_at(3, p, O_RDONLY, 5);
	snprintf(p, sizeof p, "%s/append", dir);
	write_file(p, "before\n", 7);
	open_at(4, p, O_WRONLY | O_APPEND, 0);
	snprintf(p, sizeof p, "%s/rw", dir);
	char dots[200];
	memset(dots, '.', sizeof dots);
	write_file(p, dots, sizeof dots);
	open_at(5, p, O_RDWR | O_CLOEXEC, 100);
	open_at(6, dir, O_RDONLY | O_DIRECTORY, 0);
	open_at(7, "/dev/zero", O_RDONLY, 0);
	open_at(9, "/dev/null", O_RDWR, 0);
	close(8);

	handle(SIGUSR1, on_usr1);
	handle(SIGHUP, on_hup);
	handle(SIGALRM, on_alrm);
	handle_info(SIGRTMIN, on_rt);
	handle_info(SIGUSR2, on_usr2);

	sigset_t usr2;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &usr2, NULL) != 0)
		die("sigprocmask");
	if (sigqueue(getpid(), SIGUSR2, (union sigval){.sival_int = USR2_VALUE}) != 0)
		die("sigqueue");

	// Three timers created and deleted first, so that the one kept does
	// not have the id a fresh process gets from its first timer_create.
	for (int i = 0; i < 3; i++) {
		timer_t tmp;
		if (timer_create(CLOCK_MONOTONIC, NULL, &tmp) != 0 || timer_delete(tmp) != 0)
			die("timer_create (throwaway)");
	}
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGRTMIN;
	sev.sigev_value.sival_int = PT_VALUE;
	if (timer_create(CLOCK_MONOTONIC, &sev, &g_timer) != 0)
		die("timer_create");
	struct itimerspec its = {{0, 250000000}, {0, 250000000}};
	if (timer_settime(g_timer, 0, &its, NULL) != 0)
		die("timer_settime");
	struct itimerval itv = {{0, 300000}, {0, 300000}};
	if (setitimer(ITIMER_REAL, &itv, NULL) != 0)
		die("setitimer");

	printf("READY pid=%d\n", getpid());
	fflush(stdout);
	if (self)
		return selfcheck();

	// SIGUSR1 and SIGHUP are only taken in sigsuspend, so none is missed
	// between the flag checks and the wait.
	sigset_t cmds, wait;
	sigemptyset(&cmds);
	sigaddset(&cmds, SIGUSR1);
	sigaddset(&cmds, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &cmds, &wait) != 0)
		die("sigprocmask");
	sigdelset(&wait, SIGUSR1);
	sigdelset(&wait, SIGHUP);
	for (;;) {
		if (g_usr1) {
			g_usr1 = 0;
			report();
		}
		if (g_hup) {
			g_hup = 0;
			act();
		}
		sigsuspend(&wait); // every timer tick returns here too
	}
}
