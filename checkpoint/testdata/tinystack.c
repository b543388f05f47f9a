// tinystack: a target that waits on a stack with no room under its stack
// pointer (64 bytes above an inaccessible page), as a coroutine or a
// thread at the end of its stack might. Its SIGTERM handler runs on an
// alternate stack; once it has run, the target goes back to its own stack,
// prints "ok" and exits 0.
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>

volatile int tiny_done;
static char altstack[64 * 1024];

static void on_term(int sig) {
	(void)sig;
	tiny_done = 1;
}

// run_on(sp) spins with rsp = sp until tiny_done is set.
void run_on(char *sp);
__asm__(
	".text\n"
	".globl run_on\n"
	"run_on:\n"
	"	mov %rsp, %rax\n"
	"	mov %rdi, %rsp\n"
	"	push %rax\n"
	"1:	cmpl $0, tiny_done(%rip)\n"
	"	je 1b\n"
	"	pop %rsp\n"
	"	ret\n");

int main(void) {
	char *p = mmap(NULL, 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
	struct sigaction sa = {.sa_handler = on_term, .sa_flags = SA_ONSTACK};
	if (p == MAP_FAILED || mprotect(p + 4096, 4096, PROT_READ | PROT_WRITE) ||
	    sigaltstack(&ss, NULL) || sigaction(SIGTERM, &sa, NULL)) {
		perror("tinystack: set up");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	run_on(p + 4096 + 64);
	printf("ok\n");
	return 0;
}
