/*
 * test_http.c - the HTTP entry point (audit/azure/http.h) against
 * tests/unit/http_fault_server.py, a local HTTPS server that answers from a
 * script: throttling, 5xx, resets, truncated and oversized bodies,
 * redirects, an untrusted certificate.  The server logs what it received
 * (whether an Authorization header came, never its value), so the tests
 * assert on what was sent as well as on what came back.  Sleeping is
 * replaced by a hook that records the waits, so nothing here sleeps for a
 * retry.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "audit/azure/http.h"
#include "audit/util/util.h"

#ifndef KV_SOURCE_DIR
#error "KV_SOURCE_DIR must name the source tree"
#endif
#define FAULT_SERVER KV_SOURCE_DIR "/tests/unit/http_fault_server.py"

#define SECRET "eyJ0eXAiOiJKV1QifQ.SECRET-bearer-value.c2ln"

/* ---- the server ---- */

static char workdir[256];
static pid_t server_pid = -1;
static int https_port, http_port;

static char *path_in(const char *name)
{
	return kv_asprintf("%s/%s", workdir, name);
}

static void ms_sleep(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static int group_setup(void **state)
{
	char *ports = NULL;
	FILE *f;

	(void)state;
	/* A proxy from the environment would stand between us and 127.0.0.1. */
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("http_proxy");
	unsetenv("all_proxy");
	unsetenv("ALL_PROXY");
	snprintf(workdir, sizeof(workdir), "/tmp/kvaudit-test-http-XXXXXX");
	if (!mkdtemp(workdir))
		return -1;
	server_pid = fork();
	if (server_pid < 0)
		return -1;
	if (server_pid == 0) {
		execlp("python3", "python3", FAULT_SERVER, "--workdir", workdir, (char *)NULL);
		perror("python3");
		_exit(127);
	}
	ports = path_in("ports");
	for (int i = 0; i < 300; i++) {
		int status;

		if ((f = fopen(ports, "r")) != NULL) {
			int n = fscanf(f, "%d %d", &https_port, &http_port);

			fclose(f);
			free(ports);
			return n == 2 ? 0 : -1;
		}
		if (waitpid(server_pid, &status, WNOHANG) == server_pid) {
			fprintf(stderr, "http_fault_server.py exited before it was ready\n");
			server_pid = -1;
			free(ports);
			return -1;
		}
		ms_sleep(50);
	}
	fprintf(stderr, "http_fault_server.py did not start within 15 s\n");
	free(ports);
	return -1;
}

static int group_teardown(void **state)
{
	char cmd[320];

	(void)state;
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", workdir);
	return system(cmd) == 0 ? 0 : -1;
}

/*
 * Installs a script (JSON with ` for ", so that bodies can hold ') and
 * empties the request log.  "%P" in the text becomes the HTTPS port.
 */
static void script(const char *text)
{
	struct kv_buf b;
	char *tmp = path_in("script.json.tmp"), *dst = path_in("script.json"), *log = path_in("requests.log");
	FILE *f;

	kv_buf_init(&b, 0);
	for (const char *p = text; *p; p++) {
		if (*p == '`')
			kv_buf_addc(&b, '"');
		else if (p[0] == '%' && p[1] == 'P') {
			kv_buf_addf(&b, "%d", https_port);
			p++;
		} else
			kv_buf_addc(&b, *p);
	}
	f = fopen(tmp, "w");
	assert_non_null(f);
	fputs(b.data, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, dst), 0);
	f = fopen(log, "w");
	assert_non_null(f);
	fclose(f);
	kv_buf_release(&b);
	free(tmp);
	free(dst);
	free(log);
}

/* The requests the server received since the last script(), as a JSON array (caller deletes). */
static cJSON *requests(void)
{
	char *log = path_in("requests.log");
	size_t len = 0;
	char *data = kv_read_file(log, 1 << 20, &len, NULL);
	cJSON *arr = cJSON_CreateArray();

	for (char *line = data, *nl; line && *line; line = nl + 1) {
		cJSON *o;

		nl = strchr(line, '\n');
		if (!nl)
			break;
		*nl = '\0';
		o = cJSON_Parse(line);
		assert_non_null(o);
		cJSON_AddItemToArray(arr, o);
	}
	free(data);
	free(log);
	return arr;
}

static const char *req_str(const cJSON *arr, int i, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(arr, i), key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int req_int(const cJSON *arr, int i, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(arr, i), key);

	return cJSON_IsNumber(v) ? v->valueint : cJSON_IsTrue(v) ? 1 : 0;
}

static char *url(const char *path)
{
	return kv_asprintf("https://127.0.0.1:%d%s", https_port, path);
}

/* ---- the client under test ---- */

static long sleeps[16];
static int nsleeps;

static void record_sleep(long ms)
{
	if (nsleeps < (int)(sizeof(sleeps) / sizeof(sleeps[0])))
		sleeps[nsleeps] = ms;
	nsleeps++;
}

struct fixture {
	struct http_client *h;
	FILE *log;
	char *log_text;
	size_t log_len;
	char *ca;
	struct http_response r;
	struct kv_err err;
};

/* A client with options o, trusting the server's CA when trust is set. */
static struct fixture *fixture_new(struct http_opts *o, bool trust)
{
	struct fixture *fx = kv_calloc(1, sizeof(*fx));
	struct kv_err err = {{0}};

	fx->ca = path_in("ca.pem");
	if (trust)
		o->ca_bundle = fx->ca;
	fx->log = open_memstream(&fx->log_text, &fx->log_len);
	assert_non_null(fx->log);
	o->log = fx->log;
	fx->h = http_client_new(o, &err);
	if (!fx->h)
		fail_msg("http_client_new: %s", err.msg);
	http_set_sleep_hook(fx->h, record_sleep);
	nsleeps = 0;
	memset(sleeps, 0, sizeof(sleeps));
	return fx;
}

/* A client that trusts the server's CA. */
static struct fixture *trusting(void)
{
	struct http_opts o = {0};

	return fixture_new(&o, true);
}

/* The client's log so far (owned by fx). */
static const char *log_text(struct fixture *fx)
{
	fflush(fx->log);
	return fx->log_text ? fx->log_text : "";
}

static void fixture_free(struct fixture *fx)
{
	http_response_release(&fx->r);
	http_client_free(fx->h);
	fclose(fx->log);
	free(fx->log_text);
	free(fx->ca);
	free(fx);
}

static enum http_outcome get(struct fixture *fx, const char *path, const char *bearer)
{
	char *u = url(path);
	enum http_outcome o;

	http_response_release(&fx->r);
	memset(&fx->err, 0, sizeof(fx->err));
	o = http_request(fx->h, "GET", u, bearer, (const char *const[]){"Accept: application/json", NULL}, NULL,
	                 0, &fx->r, &fx->err);
	free(u);
	return o;
}

/* Any request; the previous response is released first. */
static enum http_outcome req(struct fixture *fx, const char *method, const char *u, const char *bearer,
                             const char *const *hdrs, const char *body, size_t len)
{
	http_response_release(&fx->r);
	memset(&fx->err, 0, sizeof(fx->err));
	return http_request(fx->h, method, u, bearer, hdrs, body, len, &fx->r, &fx->err);
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!hay || !strstr(hay, needle))
		fail_msg("\"%s\"\ndoes not contain \"%s\"", hay ? hay : "(null)", needle);
}

static void assert_lacks(const char *hay, const char *needle)
{
	if (hay && strstr(hay, needle))
		fail_msg("\"%s\"\ncontains \"%s\"", hay, needle);
}

static void assert_backoff(int i, long base)
{
	if (sleeps[i] < base - base / 5 || sleeps[i] > base + base / 5)
		fail_msg("sleep #%d was %ld ms, expected %ld ms +-20%%", i + 1, sleeps[i], base);
}

/* ---- tests ---- */

static void ok_response_gives_body_request_id_and_rate_limit(void **state)
{
	struct fixture *fx = trusting();
	cJSON *reqs;

	(void)state;
	script("{`/ok`: [{`status`: 200, `body`: `{\\`value\\`: []}`, `headers`: ["
	       "[`x-ms-request-id`, `1234-abcd`],"
	       "[`x-ms-ratelimit-remaining-subscription-global-reads`, `3749`],"
	       "[`x-ms-ratelimit-remaining-resource`, `Microsoft.Compute/LowCostGetSubscriptionMaximum;23999,"
	       "Microsoft.Compute/LowCostGetResource;32`]]}]}");
	assert_int_equal(get(fx, "/ok?api-version=2024-11-01&$skiptoken=SKIPSECRET", SECRET), HTTP_OK);
	assert_int_equal(fx->r.status, 200);
	assert_string_equal(fx->r.body.data, "{\"value\": []}");
	assert_int_equal(fx->r.body.len, 13);
	assert_string_equal(fx->r.request_id, "1234-abcd");
	assert_int_equal(fx->r.ratelimit_remaining, 32);
	assert_int_equal(fx->r.retry_after, -1);
	assert_int_equal(fx->r.attempts, 1);
	assert_int_equal(fx->r.throttled, 0);
	assert_int_equal(nsleeps, 0);

	reqs = requests();
	assert_int_equal(cJSON_GetArraySize(reqs), 1);
	assert_string_equal(req_str(reqs, 0, "method"), "GET");
	assert_string_equal(req_str(reqs, 0, "path"), "/ok");
	assert_string_equal(req_str(reqs, 0, "query"), "api-version=2024-11-01&$skiptoken=SKIPSECRET");
	assert_string_equal(req_str(reqs, 0, "user_agent"), "kvaudit/" KVAUDIT_VERSION);
	assert_int_equal(req_int(reqs, 0, "auth"), 1);
	assert_string_equal(req_str(reqs, 0, "auth_scheme"), "Bearer");
	cJSON_Delete(reqs);

	/* One line, without the query or the token. */
	assert_contains(log_text(fx), "GET https://127.0.0.1:");
	assert_contains(log_text(fx), "/ok -> 200 in ");
	assert_contains(log_text(fx), " ms [1234-abcd]\n");
	assert_lacks(log_text(fx), "SKIPSECRET");
	assert_lacks(log_text(fx), "SECRET-bearer");
	fixture_free(fx);
}

static void no_bearer_means_no_authorization_header(void **state)
{
	struct fixture *fx = trusting();
	cJSON *reqs;

	(void)state;
	script("{`/anon`: [{`status`: 200, `body`: `ok`}]}");
	assert_int_equal(get(fx, "/anon", NULL), HTTP_OK);
	reqs = requests();
	assert_int_equal(req_int(reqs, 0, "auth"), 0);
	cJSON_Delete(reqs);
	fixture_free(fx);
}

static void throttled_429_waits_retry_after_then_succeeds(void **state)
{
	struct fixture *fx = trusting();
	cJSON *reqs;

	(void)state;
	script("{`/t429`: [{`status`: 429, `headers`: {`Retry-After`: `1`, `x-ms-request-id`: `r-1`},"
	       "            `body`: `{\\`error\\`: {\\`code\\`: \\`SubscriptionRequestsThrottled\\`}}`},"
	       "           {`status`: 200, `body`: `done`}]}");
	assert_int_equal(get(fx, "/t429", SECRET), HTTP_OK);
	assert_string_equal(fx->r.body.data, "done");
	assert_int_equal(fx->r.attempts, 2);
	assert_int_equal(fx->r.throttled, 1);
	assert_int_equal(fx->r.retry_after, -1); /* of the last response */
	assert_int_equal(nsleeps, 1);
	assert_int_equal(sleeps[0], 1000);
	reqs = requests();
	assert_int_equal(cJSON_GetArraySize(reqs), 2);
	assert_int_equal(req_int(reqs, 1, "auth"), 1);
	cJSON_Delete(reqs);
	assert_contains(log_text(fx), "/t429 -> 429 in ");
	assert_contains(log_text(fx), " ms, retry 1/4 after 1 s [r-1]\n");
	assert_contains(log_text(fx), "/t429 -> 200 in ");
	fixture_free(fx);
}

static void long_retry_after_is_capped(void **state)
{
	struct fixture *fx = trusting();

	(void)state;
	script("{`/cap`: [{`status`: 429, `headers`: {`Retry-After`: `3600`}}, {`status`: 200}]}");
	assert_int_equal(get(fx, "/cap", NULL), HTTP_OK);
	assert_int_equal(nsleeps, 1);
	assert_int_equal(sleeps[0], 60000);
	fixture_free(fx);

	{
		struct http_opts o = {.max_retry_after = 5};

		fx = fixture_new(&o, true);
	}
	script("{`/cap5`: [{`status`: 429, `headers`: {`Retry-After`: `3600`}}, {`status`: 200}]}");
	assert_int_equal(get(fx, "/cap5", NULL), HTTP_OK);
	assert_int_equal(sleeps[0], 5000);
	fixture_free(fx);
}

static void throttled_to_the_end_is_throttled(void **state)
{
	struct fixture *fx = trusting();

	(void)state;
	script("{`/always429`: [{`status`: 429, `headers`: {`Retry-After`: `2`},"
	       " `body`: `{\\`error\\`: {\\`code\\`: \\`SubscriptionRequestsThrottled\\`, \\`message\\`: \\`slow down\\`}}`}]}");
	assert_int_equal(get(fx, "/always429", NULL), HTTP_THROTTLED);
	assert_int_equal(fx->r.attempts, 5);
	assert_int_equal(fx->r.throttled, 5);
	assert_int_equal(fx->r.retry_after, 2);
	assert_int_equal(nsleeps, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(sleeps[i], 2000);
	assert_contains(fx->err.msg, "/always429: 429 SubscriptionRequestsThrottled: slow down after 5 attempts");
	fixture_free(fx);
}

static void unavailable_503_then_ok(void **state)
{
	struct fixture *fx = trusting();

	(void)state;
	script("{`/t503`: [{`status`: 503}, {`status`: 200, `body`: `up`}]}");
	assert_int_equal(get(fx, "/t503", NULL), HTTP_OK);
	assert_int_equal(fx->r.attempts, 2);
	assert_int_equal(fx->r.throttled, 0);
	assert_int_equal(nsleeps, 1);
	assert_backoff(0, 500);
	assert_contains(log_text(fx), "/t503 -> 503 in ");
	assert_contains(log_text(fx), ", retry 1/4 after 0.");
	fixture_free(fx);
}

static void server_errors_exhaust_the_retries(void **state)
{
	struct fixture *fx = trusting();
	cJSON *reqs;

	(void)state;
	script("{`/t500`: [{`status`: 500, `headers`: {`x-ms-request-id`: `rq-500`},"
	       " `body`: `{\\`error\\`: {\\`code\\`: \\`InternalServerError\\`, \\`message\\`: \\`oops\\`}}`}]}");
	assert_int_equal(get(fx, "/t500", SECRET), HTTP_TRANSIENT);
	assert_int_equal(fx->r.status, 500);
	assert_int_equal(fx->r.attempts, 5);
	assert_int_equal(nsleeps, 4);
	assert_backoff(0, 500);
	assert_backoff(1, 1000);
	assert_backoff(2, 2000);
	assert_backoff(3, 4000);
	reqs = requests();
	assert_int_equal(cJSON_GetArraySize(reqs), 5);
	cJSON_Delete(reqs);
	assert_contains(fx->err.msg, "/t500: 500 InternalServerError: oops (request rq-500) after 5 attempts");
	assert_contains(log_text(fx), "retry 4/4 after ");
	assert_lacks(log_text(fx), "retry 5/");
	assert_lacks(log_text(fx), "SECRET-bearer");
	assert_lacks(fx->err.msg, "SECRET-bearer");
	fixture_free(fx);
}

static void bad_gateway_and_gateway_timeout_are_retried(void **state)
{
	struct fixture *fx = trusting();

	(void)state;
	script("{`/t502`: [{`status`: 502}, {`status`: 504}, {`status`: 204}]}");
	assert_int_equal(get(fx, "/t502", NULL), HTTP_OK);
	assert_int_equal(fx->r.status, 204);
	assert_int_equal(fx->r.attempts, 3);
	fixture_free(fx);
}

static void not_found_is_not_retried(void **state)
{
	struct fixture *fx = trusting();

	(void)state;
	script("{`/missing`: [{`status`: 404, `body`: `{\\`error\\`: {\\`code\\`: \\`ResourceNotFound\\`,"
	       " \\`message\\`: \\`The Resource 'Microsoft.KeyVault/vaults/kv1' was not found.\\`}}`}]}");
	assert_int_equal(get(fx, "/missing", NULL), HTTP_NOT_FOUND);
	assert_int_equal(fx->r.status, 404);
	assert_int_equal(fx->r.attempts, 1);
	assert_int_equal(nsleeps, 0);
	assert_contains(fx->err.msg,
	                "/missing: 404 ResourceNotFound: The Resource 'Microsoft.KeyVault/vaults/kv1' was not found.");
	assert_non_null(fx->r.body.data); /* the caller may parse it too */
	fixture_free(fx);
}

static void unauthorized_is_not_retried(void **state)
{
	struct fixture *fx = trusting();

	(void)state;
	script("{`/t401`: [{`status`: 401, `headers`: {`WWW-Authenticate`: `Bearer authorization_uri=\\`x\\`, "
	       "error=\\`invalid_token\\``}, `body`: `{\\`error\\`: {\\`code\\`: \\`ExpiredAuthenticationToken\\`, "
	       "\\`message\\`: \\`The access token expiry UTC time is earlier than current UTC time.\\`}}`}]}");
	assert_int_equal(get(fx, "/t401", SECRET), HTTP_UNAUTHORIZED);
	assert_int_equal(fx->r.attempts, 1);
	assert_int_equal(nsleeps, 0);
	assert_contains(fx->err.msg, "401 ExpiredAuthenticationToken: The access token expiry");
	assert_lacks(fx->err.msg, "SECRET-bearer");
	fixture_free(fx);
}

static void other_4xx_are_fatal_and_not_retried(void **state)
{
	struct fixture *fx = trusting();

	(void)state;
	script("{`/t400`: [{`status`: 400, `body`: `{\\`error\\`: {\\`code\\`: \\`InvalidApiVersionParameter\\`,"
	       " \\`message\\`: \\`The api-version '1' is invalid.\\`}}`}], `/t409`: [{`status`: 409}]}");
	assert_int_equal(get(fx, "/t400?api-version=1", NULL), HTTP_FATAL);
	assert_int_equal(fx->r.attempts, 1);
	assert_contains(fx->err.msg, "/t400: 400 InvalidApiVersionParameter: The api-version '1' is invalid.");
	assert_int_equal(get(fx, "/t409", NULL), HTTP_FATAL);
	assert_contains(fx->err.msg, "/t409: 409 conflict");
	assert_int_equal(nsleeps, 0);
	fixture_free(fx);
}

static void forbidden_message_names_url_code_message_and_request(void **state)
{
	struct fixture *fx = trusting();
	char *want;

	(void)state;
	script("{`/subscriptions/s1/providers/Microsoft.KeyVault/vaults`: [{`status`: 403,"
	       " `headers`: {`x-ms-request-id`: `1234-5678`, `Content-Type`: `application/json; charset=utf-8`},"
	       " `body`: `{\\`error\\`: {\\`code\\`: \\`AuthorizationFailed\\`, \\`message\\`: \\`The client 'c1' with"
	       " object id 'o1' does not have authorization to perform action 'Microsoft.KeyVault/vaults/read' over"
	       " scope '/subscriptions/s1' or the scope is invalid.\\`}}`}]}");
	assert_int_equal(get(fx, "/subscriptions/s1/providers/Microsoft.KeyVault/vaults?api-version=2024-11-01"
	                         "&$skiptoken=SKIPSECRET",
	                     SECRET),
	                 HTTP_FORBIDDEN);
	want = kv_asprintf("GET https://127.0.0.1:%d/subscriptions/s1/providers/Microsoft.KeyVault/vaults: 403 "
	                   "AuthorizationFailed: The client 'c1' with object id 'o1' does not have authorization to "
	                   "perform action 'Microsoft.KeyVault/vaults/read' over scope '/subscriptions/s1' or the "
	                   "scope is invalid. (request 1234-5678)",
	                   https_port);
	assert_string_equal(fx->err.msg, want);
	free(want);
	assert_lacks(fx->err.msg, "SKIPSECRET");
	assert_lacks(log_text(fx), "SKIPSECRET");
	assert_lacks(log_text(fx), "SECRET-bearer");
	fixture_free(fx);
}

static void body_over_the_cap_is_fatal(void **state)
{
	struct http_opts o = {.max_body = 1024};
	struct fixture *fx;

	(void)state;
	fx = fixture_new(&o, true);
	script("{`/big`: [{`status`: 200, `body_repeat`: [`x`, 5000]}],"
	       " `/bigchunked`: [{`status`: 200, `body_repeat`: [`y`, 5000], `chunked`: true}],"
	       " `/fits`: [{`status`: 200, `body_repeat`: [`z`, 1024], `chunked`: true}]}");
	assert_int_equal(get(fx, "/big", NULL), HTTP_FATAL);
	assert_contains(fx->err.msg, "/big: response larger than 1024 bytes");
	assert_int_equal(fx->r.attempts, 1);
	assert_true(fx->r.body.len <= 1024);
	/* Without Content-Length the cap is enforced while reading. */
	assert_int_equal(get(fx, "/bigchunked", NULL), HTTP_FATAL);
	assert_contains(fx->err.msg, "/bigchunked: response larger than 1024 bytes");
	assert_int_equal(fx->r.attempts, 1);
	assert_true(fx->r.body.len <= 1024);
	assert_int_equal(get(fx, "/fits", NULL), HTTP_OK);
	assert_int_equal(fx->r.body.len, 1024);
	assert_int_equal(nsleeps, 0);
	fixture_free(fx);
}

static void reset_mid_body_is_retried(void **state)
{
	struct fixture *fx = trusting();

	(void)state;
	script("{`/reset`: [{`status`: 200, `body_repeat`: [`a`, 4000], `reset_after`: 100},"
	       "            {`status`: 200, `body`: `whole`}]}");
	assert_int_equal(get(fx, "/reset", NULL), HTTP_OK);
	assert_string_equal(fx->r.body.data, "whole");
	assert_int_equal(fx->r.attempts, 2);
	assert_int_equal(nsleeps, 1);
	assert_backoff(0, 500);
	fixture_free(fx);
}

static void truncated_body_is_retried(void **state)
{
	struct fixture *fx = trusting();

	(void)state;
	script("{`/trunc`: [{`status`: 200, `body_repeat`: [`b`, 400], `truncate`: 10},"
	       "            {`status`: 200, `body`: `whole`}]}");
	assert_int_equal(get(fx, "/trunc", NULL), HTTP_OK);
	assert_string_equal(fx->r.body.data, "whole");
	assert_int_equal(fx->r.attempts, 2);
	fixture_free(fx);
}

static void cut_short_to_the_end_is_transient(void **state)
{
	struct fixture *fx = trusting();

	(void)state;
	script("{`/alwaystrunc`: [{`status`: 200, `body_repeat`: [`b`, 400], `truncate`: 10}]}");
	assert_int_equal(get(fx, "/alwaystrunc", NULL), HTTP_TRANSIENT);
	assert_int_equal(fx->r.attempts, 5);
	assert_int_equal(fx->r.status, 0);
	assert_int_equal(fx->r.body.len, 0);
	assert_contains(fx->err.msg, "/alwaystrunc: ");
	assert_contains(fx->err.msg, " after 5 attempts");
	fixture_free(fx);
}

static void timeout_is_retried(void **state)
{
	struct http_opts o = {.timeout_ms = 1000, .max_retries = 1};
	struct fixture *fx;

	(void)state;
	fx = fixture_new(&o, true);
	script("{`/slow`: [{`status`: 200, `delay`: 4, `body`: `late`}, {`status`: 200, `body`: `fast`}]}");
	assert_int_equal(get(fx, "/slow", NULL), HTTP_OK);
	assert_string_equal(fx->r.body.data, "fast");
	assert_int_equal(fx->r.attempts, 2);
	assert_contains(log_text(fx), "retry 1/1 after ");
	fixture_free(fx);
}

static void untrusted_certificate_is_fatal_and_sends_nothing(void **state)
{
	struct http_opts o = {0};
	struct fixture *fx = fixture_new(&o, false);
	cJSON *reqs;

	(void)state;
	script("{`/tls`: [{`status`: 200, `body`: `should not be read`}]}");
	assert_int_equal(get(fx, "/tls", SECRET), HTTP_FATAL);
	assert_contains(fx->err.msg, "TLS certificate of 127.0.0.1 not trusted: ");
	assert_contains(fx->err.msg,
	                "; kvaudit never skips verification; add the CA to the cloud file's caBundle");
	assert_int_equal(fx->r.attempts, 1);
	assert_int_equal(fx->r.status, 0);
	assert_int_equal(nsleeps, 0);
	reqs = requests();
	assert_int_equal(cJSON_GetArraySize(reqs), 0);
	cJSON_Delete(reqs);
	assert_lacks(fx->err.msg, "SECRET-bearer");
	assert_lacks(log_text(fx), "SECRET-bearer");
	fixture_free(fx);
}

static void wrong_host_name_is_fatal(void **state)
{
	struct fixture *fx;
	struct http_opts o = {0};
	char *resolve = kv_asprintf("other.example.com:%d:127.0.0.1", https_port);
	char *u = kv_asprintf("https://other.example.com:%d/tls", https_port);
	cJSON *reqs;

	(void)state;
	o.resolve = resolve;
	fx = fixture_new(&o, true);
	script("{`/tls`: [{`status`: 200}]}");
	assert_int_equal(req(fx, "GET", u, SECRET, NULL, NULL, 0), HTTP_FATAL);
	assert_contains(fx->err.msg, "TLS certificate of other.example.com not trusted: ");
	reqs = requests();
	assert_int_equal(cJSON_GetArraySize(reqs), 0);
	cJSON_Delete(reqs);
	free(u);
	free(resolve);
	fixture_free(fx);
}

static void redirect_is_not_followed(void **state)
{
	struct fixture *fx = trusting();
	cJSON *reqs;

	(void)state;
	script("{`/redir`: [{`status`: 302, `headers`: {`Location`: `https://127.0.0.1:%P/target`}}],"
	       " `/target`: [{`status`: 200, `body`: `followed`}]}");
	assert_int_equal(get(fx, "/redir", SECRET), HTTP_FATAL);
	assert_int_equal(fx->r.status, 302);
	assert_int_equal(fx->r.attempts, 1);
	assert_contains(fx->err.msg, "/redir: 302 redirect, not followed");
	reqs = requests();
	assert_int_equal(cJSON_GetArraySize(reqs), 1);
	assert_string_equal(req_str(reqs, 0, "path"), "/redir");
	cJSON_Delete(reqs);
	fixture_free(fx);
}

static void resolve_maps_a_vault_host_to_the_server(void **state)
{
	struct http_opts o = {0};
	char *resolve = kv_asprintf(" nothing.example:1:127.0.0.1 , myvault.vault.azure.net:%d:127.0.0.1", https_port);
	char *u = kv_asprintf("https://myvault.vault.azure.net:%d/keys/kek/v1?api-version=7.4", https_port);
	char *host = kv_asprintf("myvault.vault.azure.net:%d", https_port);
	struct fixture *fx;
	cJSON *reqs;

	(void)state;
	o.resolve = resolve;
	fx = fixture_new(&o, true);
	script("{`/keys/kek/v1`: [{`status`: 200, `body`: `{\\`key\\`: {}}`}]}");
	assert_int_equal(req(fx, "GET", u, SECRET, NULL, NULL, 0), HTTP_OK);
	reqs = requests();
	assert_int_equal(cJSON_GetArraySize(reqs), 1);
	assert_string_equal(req_str(reqs, 0, "host"), host);
	assert_int_equal(req_int(reqs, 0, "auth"), 1);
	cJSON_Delete(reqs);
	fixture_free(fx);
	free(u);
	free(host);
	free(resolve);
}

static void connect_to_maps_port_443_to_the_server(void **state)
{
	struct http_opts o = {0};
	char *connect_to = kv_asprintf("myvault.vault.azure.net:443:127.0.0.1:%d", https_port);
	struct fixture *fx;
	cJSON *reqs;

	(void)state;
	o.connect_to = connect_to;
	fx = fixture_new(&o, true);
	script("{`/keys/kek`: [{`status`: 200, `body`: `{}`}]}");
	assert_int_equal(req(fx, "GET", "https://myvault.vault.azure.net/keys/kek?api-version=7.4", NULL,
	                              NULL, NULL, 0),
	                 HTTP_OK);
	reqs = requests();
	assert_string_equal(req_str(reqs, 0, "host"), "myvault.vault.azure.net");
	cJSON_Delete(reqs);
	fixture_free(fx);
	free(connect_to);
}

static void bad_resolve_entries_are_rejected(void **state)
{
	struct http_opts o = {.resolve = "myvault.vault.azure.net"};
	struct kv_err err = {{0}};

	(void)state;
	assert_null(http_client_new(&o, &err));
	assert_contains(err.msg, "resolve: bad entry 'myvault.vault.azure.net': expected host:port:address");
	o.resolve = NULL;
	o.connect_to = "a:443:b";
	assert_null(http_client_new(&o, &err));
	assert_contains(err.msg, "connect-to: bad entry 'a:443:b'");
	o.connect_to = NULL;
	o.ca_bundle = "/nonexistent/ca.pem";
	assert_null(http_client_new(&o, &err));
	assert_contains(err.msg, "CA bundle: cannot open '/nonexistent/ca.pem'");
}

static void post_is_retried_only_when_the_server_says_so(void **state)
{
	struct fixture *fx = trusting();
	char *u1 = url("/token500"), *u2 = url("/token429"), *u3 = url("/token503");
	static const char form[] = "grant_type=client_credentials&client_id=x&client_secret=SECRETFORM";
	const char *const hdrs[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
	cJSON *reqs;

	(void)state;
	script("{`/token500`: [{`status`: 500}, {`status`: 200}],"
	       " `/token429`: [{`status`: 429, `headers`: {`Retry-After`: `1`}}, {`status`: 200, `body`: `tok`}],"
	       " `/token503`: [{`status`: 503}, {`status`: 200}]}");
	assert_int_equal(req(fx, "POST", u1, NULL, hdrs, form, strlen(form)),
	                 HTTP_TRANSIENT);
	assert_int_equal(fx->r.attempts, 1);
	assert_int_equal(req(fx, "POST", u3, NULL, hdrs, form, strlen(form)),
	                 HTTP_TRANSIENT);
	assert_int_equal(fx->r.attempts, 1);
	http_response_release(&fx->r);
	assert_int_equal(req(fx, "POST", u2, NULL, hdrs, form, strlen(form)),
	                 HTTP_OK);
	assert_int_equal(fx->r.attempts, 2);
	assert_string_equal(fx->r.body.data, "tok");
	assert_int_equal(nsleeps, 1);
	assert_int_equal(sleeps[0], 1000);
	reqs = requests();
	assert_int_equal(cJSON_GetArraySize(reqs), 4);
	for (int i = 0; i < 4; i++) {
		assert_string_equal(req_str(reqs, i, "method"), "POST");
		assert_int_equal(req_int(reqs, i, "body_len"), (int)strlen(form));
		assert_string_equal(req_str(reqs, i, "content_type"), "application/x-www-form-urlencoded");
	}
	cJSON_Delete(reqs);
	assert_lacks(log_text(fx), "SECRETFORM");
	assert_lacks(fx->err.msg, "SECRETFORM");
	http_response_release(&fx->r);
	free(u1);
	free(u2);
	free(u3);
	fixture_free(fx);
}

/* A query (a POST that only reads) is retried on a bare 5xx, with backoff, as a GET is. */
static void a_query_is_retried_like_a_get(void **state)
{
	struct fixture *fx = trusting();
	char *u = url("/query");
	static const char body[] = "{\"query\":\"Resources\"}";
	const char *const hdrs[] = {"Content-Type: application/json", NULL};
	cJSON *reqs;

	(void)state;
	script("{`/query`: [{`status`: 503}, {`status`: 500}, {`status`: 200, `body`: `{}`}]}");
	http_response_release(&fx->r);
	memset(&fx->err, 0, sizeof(fx->err));
	assert_int_equal(http_query(fx->h, u, NULL, hdrs, body, strlen(body), &fx->r, &fx->err), HTTP_OK);
	assert_int_equal(fx->r.attempts, 3);
	assert_int_equal(nsleeps, 2);
	reqs = requests();
	assert_int_equal(cJSON_GetArraySize(reqs), 3);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(req_str(reqs, i, "method"), "POST");
		assert_int_equal(req_int(reqs, i, "body_len"), (int)strlen(body));
	}
	cJSON_Delete(reqs);
	http_response_release(&fx->r);
	free(u);
	fixture_free(fx);
}

static void put_delete_and_head_send_their_method(void **state)
{
	struct fixture *fx = trusting();
	char *u = url("/res");
	static const char body[] = "{\"properties\": {\"accessPolicies\": []}}";
	const char *const hdrs[] = {"Content-Type: application/json", NULL};
	cJSON *reqs;

	(void)state;
	script("{`/res`: [{`status`: 503}, {`status`: 200, `body`: `{}`}, {`status`: 200}, {`status`: 200, `body`: `x`}]}");
	assert_int_equal(req(fx, "PUT", u, SECRET, hdrs, body, strlen(body)), HTTP_OK);
	assert_int_equal(fx->r.attempts, 2); /* PUT is idempotent */
	http_response_release(&fx->r);
	assert_int_equal(req(fx, "DELETE", u, SECRET, NULL, NULL, 0), HTTP_OK);
	http_response_release(&fx->r);
	assert_int_equal(req(fx, "HEAD", u, SECRET, NULL, NULL, 0), HTTP_OK);
	assert_int_equal(fx->r.body.len, 0);
	reqs = requests();
	assert_int_equal(cJSON_GetArraySize(reqs), 4);
	assert_string_equal(req_str(reqs, 0, "method"), "PUT");
	assert_int_equal(req_int(reqs, 1, "body_len"), (int)strlen(body));
	assert_string_equal(req_str(reqs, 2, "method"), "DELETE");
	assert_int_equal(req_int(reqs, 2, "body_len"), 0);
	assert_string_equal(req_str(reqs, 3, "method"), "HEAD");
	cJSON_Delete(reqs);
	assert_int_equal(req(fx, "TRACE", u, NULL, NULL, NULL, 0), HTTP_FATAL);
	assert_contains(fx->err.msg, "unsupported method 'TRACE'");
	free(u);
	fixture_free(fx);
}

static void connection_refused_is_retried(void **state)
{
	struct fixture *fx = trusting();
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	char *u;

	(void)state;
	/* A port that nothing listens on: bound and released. */
	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &alen), 0);
	close(s);
	u = kv_asprintf("https://127.0.0.1:%d/x?q=1", ntohs(a.sin_port));
	assert_int_equal(req(fx, "GET", u, SECRET, NULL, NULL, 0), HTTP_TRANSIENT);
	assert_int_equal(fx->r.attempts, 5);
	assert_int_equal(fx->r.status, 0);
	assert_int_equal(nsleeps, 4);
	assert_contains(fx->err.msg, " after 5 attempts");
	assert_lacks(fx->err.msg, "q=1");
	http_response_release(&fx->r);
	/* A POST that never left the machine is safe to send again. */
	nsleeps = 0;
	assert_int_equal(req(fx, "POST", u, NULL, NULL, "a=b", 3), HTTP_TRANSIENT);
	assert_int_equal(fx->r.attempts, 5);
	free(u);
	fixture_free(fx);
}

static void plain_http_only_to_loopback_imds_when_allowed(void **state)
{
	struct fixture *fx = trusting();
	char *u = kv_asprintf("http://127.0.0.1:%d/metadata/identity/oauth2/token?api-version=2018-02-01", http_port);
	const char *const hdrs[] = {"Metadata: true", NULL};
	cJSON *reqs;

	(void)state;
	script("{`/metadata/identity/oauth2/token`: [{`status`: 200, `body`: `{}`}]}");
	assert_int_equal(req(fx, "GET", u, NULL, hdrs, NULL, 0), HTTP_FATAL);
	assert_contains(fx->err.msg, "kvaudit speaks https only");
	reqs = requests();
	assert_int_equal(cJSON_GetArraySize(reqs), 0);
	cJSON_Delete(reqs);
	fixture_free(fx);

	{
		struct http_opts o = {.allow_http_loopback_imds = true};

		fx = fixture_new(&o, false);
	}
	assert_int_equal(req(fx, "GET", u, NULL, hdrs, NULL, 0), HTTP_OK);
	reqs = requests();
	assert_int_equal(cJSON_GetArraySize(reqs), 1);
	assert_int_equal(req_int(reqs, 0, "tls"), 0);
	cJSON_Delete(reqs);
	/* Never a bearer token in clear text, never another host. */
	assert_int_equal(req(fx, "GET", u, SECRET, hdrs, NULL, 0), HTTP_FATAL);
	assert_contains(fx->err.msg, "refusing to send a bearer token over plain http");
	assert_int_equal(req(fx, "GET", "http://10.0.0.1/metadata", NULL, hdrs, NULL, 0),
	                 HTTP_FATAL);
	assert_contains(fx->err.msg, "https only");
	/* localhost is App Service's identity endpoint: allowed; any other name is not. */
	assert_int_equal(req(fx, "GET", "http://metadata.example/metadata", NULL, hdrs, NULL, 0),
	                 HTTP_FATAL);
	reqs = requests();
	assert_int_equal(cJSON_GetArraySize(reqs), 1);
	cJSON_Delete(reqs);
	free(u);
	fixture_free(fx);
}

static void bad_urls_are_fatal_without_a_request(void **state)
{
	struct fixture *fx = trusting();
	char *userinfo = kv_asprintf("https://user:pw@127.0.0.1:%d/x", https_port);
	char *space = kv_asprintf("https://127.0.0.1:%d/a b", https_port);
	const char *bad[] = {"ftp://127.0.0.1/x", "not a url", "https://", userinfo, space, "file:///etc/passwd"};
	cJSON *reqs;

	(void)state;
	script("{`/x`: [{`status`: 200}]}");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&fx->err, 0, sizeof(fx->err));
		assert_int_equal(req(fx, "GET", bad[i], NULL, NULL, NULL, 0), HTTP_FATAL);
		assert_int_equal(fx->r.attempts, 0);
		assert_true(fx->err.msg[0] != '\0');
		assert_lacks(fx->err.msg, "pw@");
	}
	assert_string_equal(fx->err.msg, "GET: bad URL 'file:///etc/passwd'");
	assert_int_equal(req(fx, "GET", "ftp://127.0.0.1/x?secret=1", NULL, NULL, NULL, 0), HTTP_FATAL);
	assert_string_equal(fx->err.msg, "GET: refusing 'ftp://127.0.0.1/x': kvaudit speaks https only");
	assert_int_equal(req(fx, "GET", userinfo, NULL, NULL, NULL, 0), HTTP_FATAL);
	assert_contains(fx->err.msg, "refusing a URL with user info");
	assert_int_equal(req(fx, "GET", NULL, NULL, NULL, NULL, 0), HTTP_FATAL);
	assert_int_equal(req(fx, "GET", "https://127.0.0.1/x", NULL,
	                              (const char *const[]){"X-Bad: a\r\nInjected: b", NULL}, NULL, 0),
	                 HTTP_FATAL);
	assert_contains(fx->err.msg, "bad request header #1");
	assert_int_equal(req(fx, "GET", "https://127.0.0.1/x", "tok en", NULL, NULL, 0),
	                 HTTP_FATAL);
	reqs = requests();
	assert_int_equal(cJSON_GetArraySize(reqs), 0);
	cJSON_Delete(reqs);
	free(userinfo);
	free(space);
	fixture_free(fx);
}

static void keep_alive_reuses_the_connection(void **state)
{
	struct fixture *fx = trusting();
	cJSON *reqs;

	(void)state;
	script("{`/ka`: [{`status`: 200, `body`: `1`}]}");
	assert_int_equal(get(fx, "/ka", NULL), HTTP_OK);
	assert_int_equal(get(fx, "/ka", NULL), HTTP_OK);
	assert_int_equal(get(fx, "/ka", SECRET), HTTP_OK);
	reqs = requests();
	assert_int_equal(cJSON_GetArraySize(reqs), 3);
	assert_int_equal(req_int(reqs, 0, "client_port"), req_int(reqs, 1, "client_port"));
	assert_int_equal(req_int(reqs, 1, "client_port"), req_int(reqs, 2, "client_port"));
	assert_int_equal(req_int(reqs, 1, "auth"), 0); /* nothing of one request carries over */
	assert_int_equal(req_int(reqs, 2, "auth"), 1);
	cJSON_Delete(reqs);
	fixture_free(fx);
}

static void max_retries_below_zero_means_one_attempt(void **state)
{
	struct http_opts o = {.max_retries = -1};
	struct fixture *fx;

	(void)state;
	fx = fixture_new(&o, true);
	script("{`/once`: [{`status`: 503}, {`status`: 200}]}");
	assert_int_equal(get(fx, "/once", NULL), HTTP_TRANSIENT);
	assert_int_equal(fx->r.attempts, 1);
	assert_int_equal(nsleeps, 0);
	assert_contains(fx->err.msg, "/once: 503 service unavailable");
	assert_lacks(fx->err.msg, "attempts");
	fixture_free(fx);
}

static void outcome_names(void **state)
{
	(void)state;
	assert_string_equal(http_outcome_name(HTTP_OK), "ok");
	assert_string_equal(http_outcome_name(HTTP_NOT_FOUND), "not_found");
	assert_string_equal(http_outcome_name(HTTP_UNAUTHORIZED), "unauthorized");
	assert_string_equal(http_outcome_name(HTTP_FORBIDDEN), "forbidden");
	assert_string_equal(http_outcome_name(HTTP_THROTTLED), "throttled");
	assert_string_equal(http_outcome_name(HTTP_TRANSIENT), "transient");
	assert_string_equal(http_outcome_name(HTTP_FATAL), "fatal");
}

/* ---- many at once (http_multi) ---- */

static long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void multi_runs_requests_at_once_and_returns_each(void **state)
{
	struct fixture *fx = trusting();
	struct kv_err err = {{0}};
	struct http_multi *m = http_multi_new(fx->h, 6, &err);
	struct http_response r[6];
	struct kv_err e[6];
	bool seen[6] = {false};
	void *ud;
	enum http_outcome o;
	int started, max_active, n = 0;
	long t0;

	(void)state;
	assert_non_null(m);
	script("{`/slow0`: [{`delay`: 0.4, `body`: `0`}], `/slow1`: [{`delay`: 0.4, `body`: `1`}],"
	       " `/slow2`: [{`delay`: 0.4, `body`: `2`}], `/slow3`: [{`delay`: 0.4, `body`: `3`}],"
	       " `/slow4`: [{`delay`: 0.4, `body`: `4`}], `/slow5`: [{`delay`: 0.4, `body`: `5`}]}");
	t0 = mono_ms();
	for (intptr_t i = 0; i < 6; i++) {
		char path[16], *u;

		snprintf(path, sizeof(path), "/slow%d", (int)i);
		u = url(path);
		memset(&e[i], 0, sizeof(e[i]));
		assert_true(http_multi_add(m, "GET", u, "tok", NULL, NULL, 0, i % 2 ? "sub:a" : "sub:b", &r[i], &e[i],
		                           (void *)i));
		free(u);
	}
	while (http_multi_next(m, &ud, &o)) {
		intptr_t i = (intptr_t)ud;
		char want[2] = {(char)('0' + i), 0};

		assert_int_equal(o, HTTP_OK);
		assert_false(seen[i]);
		seen[i] = true;
		assert_int_equal(r[i].status, 200);
		assert_string_equal(r[i].body.data, want);
		http_response_release(&r[i]);
		n++;
	}
	assert_int_equal(n, 6);
	/* six 0.4 s requests in well under 6 x 0.4 s (scripts/valgrind.sh sets KVAUDIT_VALGRIND: there
	 * six TLS handshakes alone take seconds, and only memory errors are the point) */
	assert_true(mono_ms() - t0 < (getenv("KVAUDIT_VALGRIND") ? 60000 : 1800));
	http_multi_stats(m, &started, &max_active);
	assert_int_equal(started, 6);
	assert_int_equal(max_active, 6);
	http_multi_free(m);
	fixture_free(fx);
}

static void multi_retries_a_429_without_holding_up_other_keys(void **state)
{
	struct fixture *fx = trusting();
	struct kv_err err = {{0}}, e1 = {{0}}, e2 = {{0}};
	struct http_multi *m = http_multi_new(fx->h, 4, &err);
	struct http_response r1, r2;
	void *ud, *order[2];
	enum http_outcome o;
	char *u1 = url("/m429"), *u2 = url("/mok");
	int n = 0;
	long t0 = mono_ms();

	(void)state;
	script("{`/m429`: [{`status`: 429, `headers`: {`Retry-After`: `1`}}, {`status`: 200, `body`: `{}`}],"
	       " `/mok`: [{`delay`: 0.2, `body`: `{}`}]}");
	assert_true(http_multi_add(m, "GET", u1, NULL, NULL, NULL, 0, "sub:storm", &r1, &e1, &r1));
	assert_true(http_multi_add(m, "GET", u2, NULL, NULL, NULL, 0, "sub:calm", &r2, &e2, &r2));
	while (http_multi_next(m, &ud, &o)) {
		assert_int_equal(o, HTTP_OK);
		order[n++] = ud;
	}
	assert_int_equal(n, 2);
	/* the calm one finished first, the throttled one after its Retry-After */
	assert_ptr_equal(order[0], &r2);
	assert_ptr_equal(order[1], &r1);
	assert_int_equal(r1.attempts, 2);
	assert_int_equal(r1.throttled, 1);
	assert_int_equal(r2.attempts, 1);
	assert_true(mono_ms() - t0 >= 1000);
	assert_contains(log_text(fx), "/m429 -> 429 in ");
	assert_contains(log_text(fx), "retry 1/4 after 1 s");
	http_response_release(&r1);
	http_response_release(&r2);
	free(u1);
	free(u2);
	http_multi_free(m);
	fixture_free(fx);
}

/* Requests added "first" (a list's pages) start before those added plainly, in the order they were added. */
static void multi_starts_requests_added_first_ahead_of_the_rest(void **state)
{
	struct fixture *fx = trusting();
	struct kv_err err = {{0}}, e[5];
	struct http_multi *m = http_multi_new(fx->h, 1, &err);
	struct http_response r[5];
	/* a, b plain; c, d first; e plain again */
	static const bool first[5] = {false, false, true, true, false};
	static const intptr_t want[5] = {2, 3, 0, 1, 4};
	void *ud;
	enum http_outcome o;
	int n = 0;

	(void)state;
	assert_non_null(m);
	script("{`/q0`: [{`body`: `{}`}], `/q1`: [{`body`: `{}`}], `/q2`: [{`body`: `{}`}], `/q3`: [{`body`: `{}`}],"
	       " `/q4`: [{`body`: `{}`}]}");
	for (intptr_t i = 0; i < 5; i++) {
		char path[16], *u;

		snprintf(path, sizeof(path), "/q%d", (int)i);
		u = url(path);
		memset(&e[i], 0, sizeof(e[i]));
		assert_true((first[i] ? http_multi_add_first : http_multi_add)(m, "GET", u, NULL, NULL, NULL, 0, "sub:a",
		                                                               &r[i], &e[i], (void *)i));
		free(u);
	}
	/* one at a time: they finish in the order they started */
	while (http_multi_next(m, &ud, &o)) {
		assert_int_equal(o, HTTP_OK);
		assert_true(n < 5);
		assert_int_equal((intptr_t)ud, want[n]);
		http_response_release(&r[(intptr_t)ud]);
		n++;
	}
	assert_int_equal(n, 5);
	http_multi_free(m);
	fixture_free(fx);
}

static void multi_returns_a_refused_request_as_fatal(void **state)
{
	struct fixture *fx = trusting();
	struct kv_err err = {{0}}, e1 = {{0}};
	struct http_multi *m = http_multi_new(fx->h, 2, &err);
	struct http_response r1;
	void *ud = NULL;
	enum http_outcome o;

	(void)state;
	assert_false(http_multi_add(m, "GET", "http://example.com/x", "secret-token", NULL, NULL, 0, NULL, &r1, &e1,
	                            &r1));
	assert_true(http_multi_next(m, &ud, &o));
	assert_ptr_equal(ud, &r1);
	assert_int_equal(o, HTTP_FATAL);
	assert_int_equal(r1.attempts, 0);
	assert_contains(e1.msg, "https only");
	assert_lacks(e1.msg, "secret-token");
	assert_false(http_multi_next(m, &ud, &o));
	http_response_release(&r1);
	http_multi_free(m);
	fixture_free(fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ok_response_gives_body_request_id_and_rate_limit),
		cmocka_unit_test(no_bearer_means_no_authorization_header),
		cmocka_unit_test(throttled_429_waits_retry_after_then_succeeds),
		cmocka_unit_test(long_retry_after_is_capped),
		cmocka_unit_test(throttled_to_the_end_is_throttled),
		cmocka_unit_test(unavailable_503_then_ok),
		cmocka_unit_test(server_errors_exhaust_the_retries),
		cmocka_unit_test(bad_gateway_and_gateway_timeout_are_retried),
		cmocka_unit_test(not_found_is_not_retried),
		cmocka_unit_test(unauthorized_is_not_retried),
		cmocka_unit_test(other_4xx_are_fatal_and_not_retried),
		cmocka_unit_test(forbidden_message_names_url_code_message_and_request),
		cmocka_unit_test(body_over_the_cap_is_fatal),
		cmocka_unit_test(reset_mid_body_is_retried),
		cmocka_unit_test(truncated_body_is_retried),
		cmocka_unit_test(cut_short_to_the_end_is_transient),
		cmocka_unit_test(timeout_is_retried),
		cmocka_unit_test(untrusted_certificate_is_fatal_and_sends_nothing),
		cmocka_unit_test(wrong_host_name_is_fatal),
		cmocka_unit_test(redirect_is_not_followed),
		cmocka_unit_test(resolve_maps_a_vault_host_to_the_server),
		cmocka_unit_test(connect_to_maps_port_443_to_the_server),
		cmocka_unit_test(bad_resolve_entries_are_rejected),
		cmocka_unit_test(post_is_retried_only_when_the_server_says_so),
		cmocka_unit_test(a_query_is_retried_like_a_get),
		cmocka_unit_test(put_delete_and_head_send_their_method),
		cmocka_unit_test(connection_refused_is_retried),
		cmocka_unit_test(plain_http_only_to_loopback_imds_when_allowed),
		cmocka_unit_test(bad_urls_are_fatal_without_a_request),
		cmocka_unit_test(keep_alive_reuses_the_connection),
		cmocka_unit_test(max_retries_below_zero_means_one_attempt),
		cmocka_unit_test(outcome_names),
		cmocka_unit_test(multi_runs_requests_at_once_and_returns_each),
		cmocka_unit_test(multi_retries_a_429_without_holding_up_other_keys),
		cmocka_unit_test(multi_starts_requests_added_first_ahead_of_the_rest),
		cmocka_unit_test(multi_returns_a_refused_request_as_fatal),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
