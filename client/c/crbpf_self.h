/* crbpf_self: a process asks the crbpf daemon to checkpoint it, with
 * fork()-like results.
 *
 *   unsigned long long from;
 *   long long crid = crbpf_checkpoint_self(NULL, NULL, &from);
 *   if (crid > 0)       the original: the checkpoint crid exists, go on
 *   else if (crid == 0) the restored copy, restarted from crid `from`
 *   else                error: errno is set, crbpf_self_error() says why
 *
 * The process must be single-threaded (crbpf does not checkpoint threads
 * yet) and the daemon must run as root or as the process's user.
 * socket: the daemon's socket (NULL: $CRBPF_SOCKET or /run/crbpf/crbpf.sock).
 * dir: an absolute image directory to write (NULL: keep it in the daemon's
 * memory, restart it with `crbpf restart CRID`).
 */
#ifndef CRBPF_SELF_H
#define CRBPF_SELF_H

long long crbpf_checkpoint_self(const char *socket, const char *dir, unsigned long long *restored_from);

/* The daemon's message (or a local one) for the last failure. */
const char *crbpf_self_error(void);

#endif
