// rseqcs: a target that waits inside an rseq critical section, to see that
// a task stopped there resumes at the section's abort handler, as the
// kernel resumes a preempted one, rather than in the middle of it.
//
// It prints "ready", then spins inside a section registered in glibc's rseq
// area until SIGUSR1 sets rseqcs_go. Preemption and signals send it to the
// abort handler, which enters the section again. It prints "completed" if it
// left the section at its end, or "cleared" if, while inside the section, it
// found its rseq_cs pointer cleared: the kernel does that when it finds the
// task outside the section, which is what a task resumed in the middle of
// one that no abort ended sees. Needs glibc 2.35 or later with rseq
// registered.
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <sys/rseq.h>

volatile int rseqcs_go;

static void on_usr1(int sig) {
	(void)sig;
	rseqcs_go = 1;
}

// in_cs(&rseq->rseq_cs) returns 0 after a commit, 2 if the pointer was
// cleared inside the section.
int in_cs(volatile __u64 *rseq_cs);
__asm__(
	".pushsection .data\n"
	".balign 32\n"
	"rseqcs_desc:\n"
	"	.long 0, 0\n"            // version, flags
	"	.quad 1f, 2f - 1f, 4f\n" // start_ip, post_commit_offset, abort_ip
	".popsection\n"
	".text\n"
	".globl in_cs\n"
	"in_cs:\n"
	"	lea rseqcs_desc(%rip), %rax\n"
	"0:	mov %rax, (%rdi)\n"
	"1:	cmpq $0, (%rdi)\n"
	"	je 5f\n"
	"	cmpl $0, rseqcs_go(%rip)\n"
	"	je 1b\n"
	"2:	movq $0, (%rdi)\n"
	"	xor %eax, %eax\n"
	"	ret\n"
	"	.long 0x53053053\n" // RSEQ_SIG, before the abort handler
	"4:	jmp 0b\n"
	"5:	mov $2, %eax\n"
	"	ret\n");

int main(void) {
	if (__rseq_size == 0) {
		printf("rseq is not registered\n");
		return 1;
	}
	struct rseq *rs = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
	struct sigaction sa = {.sa_handler = on_usr1};
	sigaction(SIGUSR1, &sa, NULL);
	printf("ready\n");
	fflush(stdout);
	int r = in_cs(&rs->rseq_cs);
	printf("%s\n", r == 0 ? "completed" : "cleared");
	return 0;
}
