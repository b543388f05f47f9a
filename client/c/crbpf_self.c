/* See crbpf_self.h. Protocol: docs/daemon.md (one JSON line each way). */
#include "crbpf_self.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char last_error[512];

const char *crbpf_self_error(void) { return last_error; }

static long long fail(int err, const char *fmt, const char *arg) {
	snprintf(last_error, sizeof last_error, fmt, arg ? arg : "");
	errno = err;
	return -1;
}

/* Value of "key": in a JSON line as an unsigned number; 0 when absent. */
static unsigned long long number(const char *line, const char *key) {
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = strstr(line, pat);
	return p ? strtoull(p + strlen(pat), NULL, 10) : 0;
}

/* Copies the JSON string value of "key" into out (no unescaping). */
static void string(const char *line, const char *key, char *out, size_t n) {
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	const char *p = strstr(line, pat);
	out[0] = 0;
	if (!p)
		return;
	p += strlen(pat);
	size_t i = 0;
	for (; p[i] && p[i] != '"' && i + 1 < n; i++)
		out[i] = p[i];
	out[i] = 0;
}

long long crbpf_checkpoint_self(const char *path, const char *dir, unsigned long long *restored_from) {
	if (!path)
		path = getenv("CRBPF_SOCKET");
	if (!path || !*path)
		path = "/run/crbpf/crbpf.sock";
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path)
		return fail(ENAMETOOLONG, "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		close(fd);
		return fail(e, "connect to the crbpf daemon: %s", strerror(e));
	}
	char req[4352];
	int n;
	if (dir)
		n = snprintf(req, sizeof req, "{\"v\":1,\"op\":\"checkpoint\",\"self\":true,\"self_fd\":%d,\"dir\":\"%s\"}\n", fd, dir);
	else
		n = snprintf(req, sizeof req, "{\"v\":1,\"op\":\"checkpoint\",\"self\":true,\"self_fd\":%d,\"in_memory\":true}\n", fd);
	if (n < 0 || (size_t)n >= sizeof req || strchr(dir ? dir : "", '"') || strchr(dir ? dir : "", '\\')) {
		close(fd);
		return fail(EINVAL, "bad image directory %s", dir);
	}
	for (int off = 0; off < n;) {
		ssize_t w = write(fd, req + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = errno;
			close(fd);
			return fail(e, "send to the crbpf daemon: %s", strerror(e));
		}
		off += w;
	}
	/* The answer: the daemon's (we are the original) or, in a restored
	 * copy, the one restart left on the fresh socket in its place. The
	 * checkpoint happens while this read waits. */
	char line[4096];
	size_t len = 0;
	for (;;) {
		ssize_t r = read(fd, line + len, sizeof line - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int e = r < 0 ? errno : EPIPE;
			close(fd);
			return fail(e, "read the crbpf daemon's answer: %s", r < 0 ? strerror(e) : "connection closed");
		}
		len += r;
		line[len] = 0;
		char *nl = strchr(line, '\n');
		if (!nl) {
			if (len == sizeof line - 1) {
				close(fd);
				return fail(EPROTO, "answer line too long%s", NULL);
			}
			continue;
		}
		*nl = 0;
		if (strstr(line, "\"event\":")) {
			/* progress: skip the line */
			size_t rest = len - (nl + 1 - line);
			memmove(line, nl + 1, rest);
			len = rest;
			line[len] = 0;
			continue;
		}
		break;
	}
	close(fd);
	if (!strstr(line, "\"ok\":true")) {
		char msg[400];
		string(line, "error", msg, sizeof msg);
		return fail(EPERM, "crbpf daemon: %s", msg);
	}
	if (!strstr(line, "\"crid\":"))
		return fail(EPROTO, "answer without crid: %s", line);
	unsigned long long crid = number(line, "crid");
	if (restored_from)
		*restored_from = number(line, "restored_from");
	return (long long)crid;
}
