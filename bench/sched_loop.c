/*
 * sched_loop.c - the cost of http_multi's scheduling loop (audit/azure/http.c,
 * sched.c) when one throttled subscription holds thousands of queued GETs:
 * one GET for each of K subscriptions, then N GETs of "sub:throttled" (each
 * answered 429 with Retry-After: 30, so the subscription stays blocked),
 * then the other E - 1 GETs of each of the K (answered 200 at once), round
 * robin, as a collection queues its reads.  The run ends when the
 * other subscriptions' GETs are all done; what the throttled one still holds
 * is dropped.  The answers come from a tiny HTTP/1.1 server, this program
 * re-executed with --serve (so callgrind, which does not follow exec by
 * default, counts only the client).  Uses only http.h, so the same file
 * builds against an older kvcore for a before/after comparison: see
 * bench/sched.sh.  Not part of the test suite.
 *
 *   sched_loop [--throttled N] [--keys K] [--each E] [--concurrency C]
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit/azure/http.h"

#define MAXCONN 512

struct conn {
	int fd;
	char buf[4096];
	size_t n;
};

/* Answers every request on every connection (keep-alive); never returns. */
static void serve(int lfd)
{
	static struct conn c[MAXCONN];
	struct pollfd p[MAXCONN + 1];
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
	static const char busy[] = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\n"
	                           "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
	int n = 0;

	for (;;) {
		p[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
		for (int i = 0; i < n; i++)
			p[i + 1] = (struct pollfd){.fd = c[i].fd, .events = POLLIN};
		if (poll(p, (nfds_t)n + 1, -1) < 0 && errno != EINTR)
			_exit(1);
		for (int i = n - 1; i >= 0; i--) {
			ssize_t got;
			char *end;

			if (!(p[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			got = read(c[i].fd, c[i].buf + c[i].n, sizeof(c[i].buf) - 1 - c[i].n);
			if (got <= 0) {
				close(c[i].fd);
				c[i] = c[--n];
				continue;
			}
			c[i].n += (size_t)got;
			c[i].buf[c[i].n] = '\0';
			/* GETs only: a request ends at its empty line. */
			while ((end = strstr(c[i].buf, "\r\n\r\n")) != NULL) {
				size_t used = (size_t)(end + 4 - c[i].buf);
				bool throttled = strncmp(c[i].buf, "GET /throttled", 14) == 0;

				if (write(c[i].fd, throttled ? busy : ok, throttled ? sizeof(busy) - 1 : sizeof(ok) - 1) < 0)
					break;
				memmove(c[i].buf, c[i].buf + used, c[i].n - used + 1);
				c[i].n -= used;
			}
		}
		if ((p[0].revents & POLLIN) && n < MAXCONN) {
			int fd = accept(lfd, NULL, NULL);

			if (fd >= 0)
				c[n++] = (struct conn){.fd = fd};
		}
	}
}

static double now_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	int throttled = 20000, keys = 50, each = 20, concurrency = 32;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	struct http_opts o = {.allow_http_loopback_imds = true, .timeout_ms = 120000};
	struct kv_err err = {{0}};
	struct http_client *h;
	struct http_multi *m;
	struct http_response *resp;
	struct kv_err *errs;
	int lfd, total, calm_done = 0, started = 0, max_active = 0;
	pid_t server;
	double t0, c0;
	char url[128], key[64];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--serve") == 0 && i + 1 < argc) {
			serve(atoi(argv[i + 1]));
		} else if (i + 1 < argc && strcmp(argv[i], "--throttled") == 0) {
			throttled = atoi(argv[++i]);
		} else if (i + 1 < argc && strcmp(argv[i], "--keys") == 0) {
			keys = atoi(argv[++i]);
		} else if (i + 1 < argc && strcmp(argv[i], "--each") == 0) {
			each = atoi(argv[++i]);
		} else if (i + 1 < argc && strcmp(argv[i], "--concurrency") == 0) {
			concurrency = atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: %s [--throttled N] [--keys K] [--each E] [--concurrency C]\n", argv[0]);
			return 2;
		}
	}
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 256) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) {
		perror("listen");
		return 1;
	}
	server = fork();
	if (server == 0) {
		char fd[16];

		snprintf(fd, sizeof(fd), "%d", lfd);
		/* argv[0], not /proc/self/exe: under valgrind that is valgrind's own tool binary. */
		execl(argv[0], argv[0], "--serve", fd, (char *)NULL);
		_exit(127);
	}
	close(lfd);
	h = http_client_new(&o, &err);
	m = h ? http_multi_new(h, concurrency, &err) : NULL;
	if (!m) {
		fprintf(stderr, "%s\n", err.msg);
		kill(server, SIGTERM);
		return 1;
	}
	total = throttled + keys * each;
	resp = calloc((size_t)total, sizeof(*resp));
	errs = calloc((size_t)total, sizeof(*errs));
	t0 = now_s(CLOCK_MONOTONIC);
	c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
	for (int i = 0; i < total; i++) {
		/* i: the order queued; ud: throttled ones 0..N-1, the others N.. in round-robin order */
		bool thr = i >= keys && i < keys + throttled;
		int j = i < keys ? i : i - throttled;

		if (thr) {
			snprintf(url, sizeof(url), "http://127.0.0.1:%d/throttled/%d", ntohs(a.sin_port), i - keys);
			snprintf(key, sizeof(key), "sub:throttled");
		} else {
			/* round robin over the subscriptions, as lists of many subscriptions come in */
			snprintf(url, sizeof(url), "http://127.0.0.1:%d/calm/%d/%d", ntohs(a.sin_port), j % keys, j / keys);
			snprintf(key, sizeof(key), "sub:calm-%04d", j % keys);
		}
		{
			int ud = thr ? i - keys : throttled + j;

			http_multi_add(m, "GET", url, NULL, NULL, NULL, 0, key, &resp[ud], &errs[ud], (void *)(intptr_t)ud);
		}
	}
	while (calm_done < keys * each) {
		void *ud;
		enum http_outcome out;

		if (!http_multi_next(m, &ud, &out))
			break;
		if ((intptr_t)ud >= throttled) {
			if (out != HTTP_OK)
				fprintf(stderr, "request %d: %s\n", (int)(intptr_t)ud, errs[(intptr_t)ud].msg);
			calm_done++;
		}
		http_response_release(&resp[(intptr_t)ud]);
	}
	http_multi_stats(m, &started, &max_active);
	printf("throttled %d queued, %d keys x %d: %d done, %d attempts started, %d at most at once; "
	       "%.2f s wall, %.2f s CPU\n",
	       throttled, keys, each, calm_done, started, max_active, now_s(CLOCK_MONOTONIC) - t0,
	       now_s(CLOCK_PROCESS_CPUTIME_ID) - c0);
	http_multi_free(m);   /* drops what the throttled subscription still holds */
	http_client_free(h);
	for (int i = 0; i < total; i++)
		http_response_release(&resp[i]);
	free(resp);
	free(errs);
	kill(server, SIGTERM);
	waitpid(server, NULL, 0);
	return calm_done == keys * each ? 0 : 1;
}
