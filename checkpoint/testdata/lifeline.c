// lifeline: a target that checks its own registers while it spins, so that
// a tracer dying mid-injection is seen if it leaves any of them changed.
//
// It installs an alternate signal stack and a SIGTERM handler on it, blocks
// SIGUSR2, sets MXCSR to a non-default value, prints "ready" and spins in
// spin(): every general-purpose register but rsp holds a known value, ymm2 a
// known pattern, and each turn compares them all (and MXCSR) until the
// handler sets lifeline_done. Then it checks its signal mask and alternate
// stack, prints "ok" and exits 0. Exit codes: 2 a register changed (the line
// before says which), 3 the mask, 4 the alternate stack, 5 the handler did
// not run on it.
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

volatile int lifeline_done;
const uint64_t lifeline_pattern[4] __attribute__((aligned(32))) = {
	0x0123456789abcdefULL, 0xfedcba9876543210ULL, 0x1111222233334444ULL, 0x5555666677778888ULL};
uint32_t lifeline_mxcsr = 0x9f80; // default masks, flush-to-zero
uint32_t lifeline_scratch;

static char altstack[64 * 1024];
static volatile int on_altstack;

static void on_term(int sig) {
	char here;
	(void)sig;
	on_altstack = &here >= altstack && &here < altstack + sizeof altstack;
	lifeline_done = 1;
}

// spin returns 0 once lifeline_done is set, or the number of the check
// that failed.
int spin(void);
__asm__(
	".text\n"
	".globl spin\n"
	"spin:\n"
	"	push %rbx; push %rbp; push %r12; push %r13; push %r14; push %r15\n"
	"	sub $8, %rsp\n"
	"	ldmxcsr lifeline_mxcsr(%rip)\n"
	"	vmovdqa lifeline_pattern(%rip), %ymm2\n"
	"	vpcmpeqd %ymm4, %ymm4, %ymm4\n"
	"	mov $0x11111101, %rax\n"
	"	mov $0x11111102, %rbx\n"
	"	mov $0x11111103, %rcx\n"
	"	mov $0x11111104, %rdx\n"
	"	mov $0x11111105, %rsi\n"
	"	mov $0x11111106, %rdi\n"
	"	mov $0x11111107, %rbp\n"
	"	mov $0x11111108, %r8\n"
	"	mov $0x11111109, %r9\n"
	"	mov $0x1111110a, %r10\n"
	"	mov $0x1111110b, %r11\n"
	"	mov $0x1111110c, %r12\n"
	"	mov $0x1111110d, %r13\n"
	"	mov $0x1111110e, %r14\n"
	"	mov $0x1111110f, %r15\n"
	"1:	cmpl $0, lifeline_done(%rip); jne 2f\n"
	"	cmp $0x11111101, %rax; jne 3f\n"
	"	cmp $0x11111102, %rbx; jne 3f\n"
	"	cmp $0x11111103, %rcx; jne 3f\n"
	"	cmp $0x11111104, %rdx; jne 3f\n"
	"	cmp $0x11111105, %rsi; jne 3f\n"
	"	cmp $0x11111106, %rdi; jne 3f\n"
	"	cmp $0x11111107, %rbp; jne 3f\n"
	"	cmp $0x11111108, %r8; jne 3f\n"
	"	cmp $0x11111109, %r9; jne 3f\n"
	"	cmp $0x1111110a, %r10; jne 3f\n"
	"	cmp $0x1111110b, %r11; jne 3f\n"
	"	cmp $0x1111110c, %r12; jne 3f\n"
	"	cmp $0x1111110d, %r13; jne 3f\n"
	"	cmp $0x1111110e, %r14; jne 3f\n"
	"	cmp $0x1111110f, %r15; jne 3f\n"
	"	vpcmpeqq lifeline_pattern(%rip), %ymm2, %ymm3\n"
	"	vptest %ymm4, %ymm3; jnc 4f\n" // CF: every lane equal
	"	stmxcsr lifeline_scratch(%rip)\n"
	"	mov lifeline_mxcsr(%rip), %eax; cmp lifeline_scratch(%rip), %eax\n"
	"	mov $0x11111101, %rax\n" // the flags of the cmp survive the mov
	"	jne 5f\n"
	"	jmp 1b\n"
	"2:	xor %eax, %eax; jmp 9f\n"
	"3:	mov $1, %eax; jmp 9f\n"
	"4:	mov $2, %eax; jmp 9f\n"
	"5:	mov $3, %eax\n"
	"9:	movl $0x1f80, lifeline_scratch(%rip); ldmxcsr lifeline_scratch(%rip)\n"
	"	vzeroupper\n"
	"	add $8, %rsp\n"
	"	pop %r15; pop %r14; pop %r13; pop %r12; pop %rbp; pop %rbx\n"
	"	ret\n");

int main(void) {
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
	struct sigaction sa = {.sa_handler = on_term, .sa_flags = SA_ONSTACK};
	sigset_t m;
	if (sigaltstack(&ss, NULL) || sigaction(SIGTERM, &sa, NULL)) {
		perror("lifeline: set up");
		return 1;
	}
	sigemptyset(&m);
	sigaddset(&m, SIGUSR2);
	sigprocmask(SIG_BLOCK, &m, NULL);
	printf("ready\n");
	fflush(stdout);

	static const char *what[] = {"", "a general-purpose register", "ymm2", "MXCSR"};
	int bad = spin();
	if (bad) {
		printf("%s changed\n", what[bad]);
		return 2;
	}
	sigset_t now;
	sigprocmask(SIG_BLOCK, NULL, &now);
	for (int sig = 1; sig < 32; sig++) {
		if (sigismember(&now, sig) != (sig == SIGUSR2)) {
			printf("signal %d is %sblocked\n", sig, sigismember(&now, sig) ? "" : "not ");
			return 3;
		}
	}
	stack_t cur;
	sigaltstack(NULL, &cur);
	if (cur.ss_sp != altstack || cur.ss_size != sizeof altstack || cur.ss_flags != 0) {
		printf("alternate stack %p+%zu flags %d\n", cur.ss_sp, cur.ss_size, cur.ss_flags);
		return 4;
	}
	if (!on_altstack) {
		printf("the handler ran off the alternate stack\n");
		return 5;
	}
	printf("ok\n");
	return 0;
}
