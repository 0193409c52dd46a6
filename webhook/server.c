#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "../common/buf.h"
#include "../common/cli.h"
#include "../common/file.h"
#include "../common/log.h"
#include "../common/metrics.h"
#include "arena.h"
#include "budget.h"
#include "certs.h"
#include "conns.h"
#include "policy.h"
#include "review.h"
#include "server.h"

#define BODY_MAX	(4 * 1024 * 1024)	/* two objects of etcd's 1.5 MiB */
/* One request's parse (one at a time: every callback runs on the loop's
 * one thread); all bodies together are budget.c's. */
#define PARSE_BUDGET	(16 * 1024 * 1024)
#define DRAIN_MAX	(64 * 1024 * 1024)	/* past this, answer and close */
#define STOP_GRACE	20			/* seconds for in-flight requests */
#define CERT_KEEP	600			/* seconds a replaced pair lives */

struct server {
	const struct server_options *opts;
	struct config		*cfg;		/* owned snapshot */
	struct file_watch	 cfg_watch;
	struct certstore	 certs;
	struct MHD_Daemon	*tls;
	struct MHD_Daemon	*plain;
	int			 epfd;
	int			 sigfd;
	int			 timerfd;
	unsigned int		 in_flight;
	struct budget		 bodies;	/* what all bodies hold */
	double			 last_request;	/* monotonic start of the newest */
	int			 stopping;	/* SIGTERM: /readyz fails */
	double			 quiesce_at;	/* then stop accepting, at this time */
	int			 quiesced;
	time_t			 stop_deadline;
	struct conns		 conns;		/* every open TLS connection; each
						 * is MHD's socket context */

	struct metric_family	*m_requests;
	struct metric_family	*m_duration;
	struct metric_family	*m_cert_expiry;
	struct metric_family	*m_reload_errors;
};

/* Per-request state, MHD's *req_cls: created at the first call, freed in
 * the completion callback. */
struct request {
	struct server	*srv;
	struct buf	 body;
	size_t		 charged;	/* of srv->bodies, for this body */
	int		 over_budget;	/* the global budget refused it: 503 */
	size_t		 drained;
	int		 mutate;	/* POST /mutate */
	struct timespec	 start;
};

static double
mono_now(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static double
seconds_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* Queue a response that takes the buffer (malloc'd) as its body.  While
 * stopping, it also closes the connection, so that no client sends another
 * request on it. */
static enum MHD_Result
respond(struct server *srv, struct MHD_Connection *conn, unsigned int status,
    char *body, size_t len, const char *type)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (body == NULL)
		return MHD_NO;
	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (srv->stopping)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
respond_text(struct server *srv, struct MHD_Connection *conn, unsigned int status,
    const char *text)
{
	return respond(srv, conn, status, strdup(text), strlen(text), "text/plain");
}

static enum MHD_Result
respond_error(struct server *srv, struct MHD_Connection *conn, unsigned int status,
    const char *message, int count)
{
	size_t len;
	char *body = review_error_body((int)status, message, &len);
	char code[16];

	if (count)
		metrics_add(srv->m_requests, 1, "error");
	snprintf(code, sizeof(code), "%u", status);
	log_warn("request rejected", "status", code, "error", message, NULL);
	return respond(srv, conn, status, body, len, "application/json");
}

static const char *
pod_name(const cJSON *pod)
{
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(pod, "metadata");
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(meta, "name");

	if (cJSON_IsString(n) && n->valuestring[0] != '\0')
		return n->valuestring;
	n = cJSON_GetObjectItemCaseSensitive(meta, "generateName");
	return cJSON_IsString(n) ? n->valuestring : "";
}

/* A review whose pod cannot be read within PARSE_BUDGET, answered by its
 * uid (read from the framing alone): a pod that did not opt in is admitted
 * unchanged, as every other pod that did not; one that opted in (or may
 * have) is denied, so kube-apiserver shows the user why. */
static enum MHD_Result
deny_uninspectable(struct server *srv, struct MHD_Connection *conn, struct request *req)
{
	struct policy_decision d;
	char uid[256];
	size_t len;
	char *answer;

	if (review_uid(req->body.data, req->body.len, uid, sizeof(uid)) == -1)
		return respond_error(srv, conn, 400, "request too large or too deeply "
		    "nested to read within the webhook's memory budget", 1);
	memset(&d, 0, sizeof(d));
	if (review_opt_in(req->body.data, req->body.len) == 0) {
		if ((answer = review_answer(uid, &d, &len)) == NULL)
			return respond_error(srv, conn, 500, "out of memory", 1);
		metrics_add(srv->m_requests, 1, "unchanged");
		return respond(srv, conn, MHD_HTTP_OK, answer, len, "application/json");
	}
	d.result = POLICY_DENIED;
	d.code = 400;
	d.message = strdup("pod too large or too deeply nested for pipewarden to "
	    "inspect within its memory budget (16 MiB for one request); make the "
	    "pod spec smaller (fewer env, args or volumes)");
	answer = d.message != NULL ? review_answer(uid, &d, &len) : NULL;
	policy_decision_release(&d);
	if (answer == NULL)
		return respond_error(srv, conn, 500, "out of memory", 1);
	metrics_add(srv->m_requests, 1, "denied");
	log_warn("admission", "uid", uid, "result", "denied", "reason",
	    "pod too large to inspect within the memory budget", NULL);
	return respond(srv, conn, MHD_HTTP_OK, answer, len, "application/json");
}

/* Charge the bytes of body received so far; -1 when they do not fit (the
 * body is then dropped and drained, and answered 503). */
static int
charge_body(struct server *srv, struct request *req, size_t total)
{
	if (budget_charge(&srv->bodies, &req->charged, total) == 0)
		return 0;
	req->over_budget = 1;
	buf_release(&req->body);
	return -1;
}

/* The whole body is in: decide and answer. */
static enum MHD_Result
mutate(struct server *srv, struct MHD_Connection *conn, struct request *req)
{
	static const char *const results[] = { "unchanged", "patched", "denied" };
	struct policy_decision d;
	struct policy_input in;
	struct review rv;
	char err[256], ops[32], ms[32];
	enum MHD_Result ret;
	size_t len;
	char *answer;

	/* Every cJSON tree of this request lives and dies in the arena. */
	arena_open(PARSE_BUDGET);
	if (review_parse(req->body.data, req->body.len, &rv, err, sizeof(err)) == -1) {
		int over = arena_exhausted();
		arena_close();
		if (over)
			return deny_uninspectable(srv, conn, req);
		return respond_error(srv, conn, 400, err, 1);
	}
	in.operation = rv.operation;
	in.kind = rv.kind;
	in.group = rv.group;
	in.pod = rv.object;
	in.version = srv->opts->version;
	if (policy_decide(srv->cfg, &in, &d) == -1 ||
	    (answer = review_answer(rv.uid, &d, &len)) == NULL) {
		int over = arena_exhausted();
		policy_decision_release(&d);
		review_release(&rv);
		arena_close();
		if (over)
			return deny_uninspectable(srv, conn, req);
		return respond_error(srv, conn, 500, "out of memory", 1);
	}
	metrics_add(srv->m_requests, 1, results[d.result]);
	metrics_observe(srv->m_duration, seconds_since(&req->start));
	snprintf(ops, sizeof(ops), "%zu", d.nops);
	snprintf(ms, sizeof(ms), "%.3f", seconds_since(&req->start) * 1000);
	if (d.opted_in || d.nwarnings > 0)
		log_msg(d.result == POLICY_DENIED ? LOG_WARN : LOG_INFO, "admission",
		    "uid", rv.uid, "namespace", rv.namespace,
		    "pod", rv.object != NULL ? pod_name(rv.object) : "",
		    "result", results[d.result], "pool", d.pool, "ops", ops,
		    "reason", d.result == POLICY_DENIED ? d.message : "",
		    "dryRun", rv.dry_run ? "true" : "false", "ms", ms, NULL);
	policy_decision_release(&d);
	review_release(&rv);
	arena_close();
	ret = respond(srv, conn, MHD_HTTP_OK, answer, len, "application/json");
	return ret;
}

/* Set a connection's deadline (only earlier, when tighten). */
static void
conn_deadline(struct MHD_Connection *conn, double deadline, int tighten)
{
	const union MHD_ConnectionInfo *ci;

	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (ci != NULL && ci->socket_context != NULL)
		conns_deadline(ci->socket_context, deadline, tighten);
}

/* A TLS connection opens or closes.  From accept, a client has
 * --request-timeout to complete its TLS handshake and its first request;
 * a slow client cannot hold a connection slot longer by sending a byte
 * now and then (libmicrohttpd's own timeout counts only silence). */
static void
notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
    enum MHD_ConnectionNotificationCode code)
{
	struct server *srv = cls;
	const union MHD_ConnectionInfo *ci;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		/* Out of memory: unbounded but served (MHD's own timeout). */
		ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (ci != NULL)
			*socket_context = conns_open(&srv->conns, ci->connect_fd,
			    mono_now() + srv->opts->request_timeout);
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		conns_close(&srv->conns, *socket_context);
		*socket_context = NULL;
	}
}

/* A connection past its deadline: libmicrohttpd sees the shut down socket
 * on its next run and closes the connection. */
static void
cut_connection(int fd)
{
	shutdown(fd, SHUT_RDWR);
	log_debug("connection cut: no whole request by its deadline", NULL);
}

static void
sweep_deadlines(struct server *srv)
{
	conns_sweep(&srv->conns, mono_now(), cut_connection);
}

/* A request's headers are in: its state, and its deadline.  Nothing is
 * held, or charged, for a declared Content-Length: the budget counts bytes
 * received (a client that sends only headers holds nothing). */
static enum MHD_Result
begin_request(struct server *srv, struct MHD_Connection *conn, const char *url,
    const char *method, void **req_cls)
{
	struct request *req;

	if ((req = calloc(1, sizeof(*req))) == NULL)
		return MHD_NO;
	req->srv = srv;
	clock_gettime(CLOCK_MONOTONIC, &req->start);
	buf_init(&req->body, BODY_MAX);
	req->body.step = 64 * 1024;
	req->mutate = strcmp(url, "/mutate") == 0 && strcmp(method, MHD_HTTP_METHOD_POST) == 0;
	*req_cls = req;
	srv->in_flight++;
	srv->last_request = mono_now();
	/* While a request is being received, a silent client is dropped soon;
	 * between requests it may idle longer (completion).  The body, too,
	 * must be in by the deadline. */
	MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
	    srv->opts->request_timeout);
	conn_deadline(conn, mono_now() + srv->opts->request_timeout, 1);
	return MHD_YES;
}

static enum MHD_Result
handle_tls(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **req_cls)
{
	struct server *srv = cls;
	struct request *req = *req_cls;

	(void)version;
	/* libmicrohttpd's three calls: the headers, each piece of the body,
	 * the end of the request. */
	if (req == NULL)
		return begin_request(srv, conn, url, method, req_cls);
	if (*upload_data_size > 0) {
		if (seconds_since(&req->start) > srv->opts->request_timeout) {
			*upload_data_size = 0;
			return respond_error(srv, conn, 408, "request body not "
			    "received in time", 1);
		}
		if (req->mutate && !req->body.failed && !req->over_budget &&
		    charge_body(srv, req, req->body.len + *upload_data_size) == 0)
			buf_add(&req->body, upload_data, *upload_data_size);
		else
			req->drained += *upload_data_size;
		*upload_data_size = 0;
		/* A body past the limit is drained so that the 413 reaches a
		 * client still sending; a flood past DRAIN_MAX is cut short. */
		if (req->drained > DRAIN_MAX)
			return respond_error(srv, conn, 413, "request body larger "
			    "than 4 MiB", 1);
		return MHD_YES;
	}
	if (req->mutate) {
		if (req->over_budget)
			return respond_error(srv, conn, 503, "the webhook holds as many "
			    "request bodies as its memory allows; try again", 1);
		if (req->body.toobig)
			return respond_error(srv, conn, 413, "request body larger "
			    "than 4 MiB (an AdmissionReview holds at most two objects "
			    "of 1.5 MiB)", 1);
		if (req->body.failed)
			return respond_error(srv, conn, 500, "out of memory", 1);
		return mutate(srv, conn, req);
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) == 0 && strcmp(url, "/healthz") == 0)
		return respond_text(srv, conn, MHD_HTTP_OK, "ok\n");
	if (strcmp(method, MHD_HTTP_METHOD_GET) == 0 && strcmp(url, "/readyz") == 0) {
		if (srv->stopping || srv->certs.current == NULL || srv->cfg == NULL)
			return respond_text(srv, conn, MHD_HTTP_SERVICE_UNAVAILABLE,
			    "not ready\n");
		return respond_text(srv, conn, MHD_HTTP_OK, "ok\n");
	}
	if (strcmp(url, "/mutate") == 0)
		return respond_error(srv, conn, 405, "use POST for /mutate", 0);
	return respond_error(srv, conn, 404, "no such path (serving /mutate, "
	    "/healthz, /readyz)", 0);
}

static enum MHD_Result
handle_plain(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **req_cls)
{
	struct server *srv = cls;
	static int marker;
	struct buf b;
	char *text;
	size_t len;

	(void)version;
	(void)upload_data;
	if (*req_cls == NULL) {
		*req_cls = &marker;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
		return respond_text(srv, conn, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET\n");
	if (strcmp(url, "/healthz") == 0)
		return respond_text(srv, conn, MHD_HTTP_OK, "ok\n");
	if (strcmp(url, "/metrics") != 0)
		return respond_text(srv, conn, MHD_HTTP_NOT_FOUND,
		    "no such path (serving /metrics, /healthz)\n");
	metrics_set(srv->m_cert_expiry, (double)certstore_expiry(&srv->certs));
	buf_init(&b, 16 * 1024 * 1024);
	metrics_render(&b);
	text = buf_detach(&b, &len);
	buf_release(&b);
	return respond(srv, conn, MHD_HTTP_OK, text, len,
	    "text/plain; version=0.0.4; charset=utf-8");
}

static void
request_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct server *srv = cls;
	struct request *req = *req_cls;

	(void)toe;
	if (req == NULL)
		return;
	budget_return(&srv->bodies, &req->charged);
	buf_release(&req->body);
	free(req);
	*req_cls = NULL;
	srv->in_flight--;
	MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
	    srv->opts->idle_timeout);
	/* Between requests a keep-alive client may idle, then send the next
	 * whole request, all within --idle-timeout. */
	conn_deadline(conn, mono_now() + srv->opts->idle_timeout, 0);
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	log_debug("libmicrohttpd", "detail", msg, NULL);
}

/* The listen address: --address, else all IPv6 and IPv4 addresses. */
static int
listen_address(const char *address, unsigned int port, struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	if (address == NULL || *address == '\0')
		return 0;
	if (inet_pton(AF_INET, address, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		return 1;
	}
	if (inet_pton(AF_INET6, address, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		return 1;
	}
	return -1;
}

static struct MHD_Daemon *
start_daemon(struct server *srv, int tls, unsigned int port, int dual_stack)
{
	/* TLS 1.2 and 1.3, AEAD ciphers, ECDHE only.  X25519 first: with
	 * %SERVER_PRECEDENCE GnuTLS would otherwise pick P-256 ECDH, which
	 * cost 40% more CPU per handshake here (make bench). */
	static const char priorities[] = "NORMAL:-VERS-ALL:+VERS-TLS1.3:"
	    "+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
	    "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:"
	    "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:"
	    "%SERVER_PRECEDENCE";
	struct MHD_OptionItem o[16];
	struct sockaddr_storage ss;
	unsigned int flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	int have, n = 0;

	if ((have = listen_address(srv->opts->address, port, &ss)) == -1) {
		log_error("invalid --address: not an IPv4 or IPv6 address",
		    "address", srv->opts->address, NULL);
		return NULL;
	}
	if (have == 0 && dual_stack)
		flags |= MHD_USE_DUAL_STACK;
	else if (have == 1 && ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_EXTERNAL_LOGGER,
	    (intptr_t)mhd_log, srv };
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT,
	    (intptr_t)srv->opts->connection_limit, NULL };
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT,
	    (intptr_t)(tls ? srv->opts->request_timeout : srv->opts->idle_timeout),
	    NULL };
	if (have == 1)
		o[n++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &ss };
	if (tls) {
		flags |= MHD_USE_TLS;
		o[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED,
		    (intptr_t)request_completed, srv };
		o[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_CONNECTION,
		    (intptr_t)notify_connection, srv };
		o[n++] = (struct MHD_OptionItem){ MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		    (intptr_t)srv->opts->per_address_limit, NULL };
		o[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_CERT_CALLBACK, 0,
		    (void *)certstore_callback() };
		o[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0,
		    (void *)priorities };
	}
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	return MHD_start_daemon(flags, (uint16_t)port, NULL, NULL,
	    tls ? handle_tls : handle_plain, srv, MHD_OPTION_ARRAY, o, MHD_OPTION_END);
}

/* Start a daemon on all addresses, IPv6 and IPv4 where the pod has both. */
static struct MHD_Daemon *
start_listening(struct server *srv, int tls, unsigned int port)
{
	struct MHD_Daemon *d = start_daemon(srv, tls, port, 1);

	if (d == NULL && (srv->opts->address == NULL || *srv->opts->address == '\0'))
		d = start_daemon(srv, tls, port, 0);
	return d;
}

static void
reload_config(struct server *srv)
{
	struct config *cfg;
	char err[512];

	if (!file_watch_changed(&srv->cfg_watch))
		return;
	if ((cfg = config_load(srv->opts->config_path, err, sizeof(err))) == NULL) {
		metrics_add(srv->m_reload_errors, 1);
		log_error("config reload failed; the previous config stays in force",
		    "file", srv->opts->config_path, "error", err, NULL);
		return;
	}
	/* No request holds the old snapshot between callbacks. */
	config_free(srv->cfg);
	srv->cfg = cfg;
	log_info("config reloaded", "file", srv->opts->config_path, NULL);
}

static void
load_certs(struct server *srv, int initial)
{
	char err[512], expiry[32];
	time_t now = time(NULL);

	certstore_reap(&srv->certs, now, CERT_KEEP);
	if (!certstore_changed(&srv->certs) && !initial)
		return;
	if (certstore_load(&srv->certs, now, err, sizeof(err)) == -1) {
		log_error(srv->certs.current != NULL ? "certificate reload failed; the "
		    "previous pair stays in service" : "no serving certificate yet; "
		    "retrying every second", "cert", srv->opts->cert_path,
		    "key", srv->opts->key_path, "error", err, NULL);
		return;
	}
	snprintf(expiry, sizeof(expiry), "%lld", (long long)certstore_expiry(&srv->certs));
	metrics_set(srv->m_cert_expiry, (double)certstore_expiry(&srv->certs));
	log_info(initial ? "certificate loaded" : "certificate reloaded",
	    "cert", srv->opts->cert_path, "notAfter", expiry, NULL);
}

static int
epoll_add(int epfd, int fd)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.fd = fd;
	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static int
daemon_fd(struct MHD_Daemon *d)
{
	const union MHD_DaemonInfo *info;

	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD);
	return info != NULL ? info->epoll_fd : -1;
}

/* Milliseconds until MHD wants to run again (timeouts), at most max. */
static int
next_timeout(struct server *srv, int max)
{
	MHD_UNSIGNED_LONG_LONG t;
	int ms = max;

	if (MHD_get_timeout(srv->tls, &t) == MHD_YES && t < (MHD_UNSIGNED_LONG_LONG)ms)
		ms = (int)t;
	if (MHD_get_timeout(srv->plain, &t) == MHD_YES && t < (MHD_UNSIGNED_LONG_LONG)ms)
		ms = (int)t;
	return ms;
}

/* SIGTERM: /readyz fails at once, so endpoints drop the pod; connections
 * are still accepted for --shutdown-delay, the time that takes. */
static void
begin_stop(struct server *srv, const char *why)
{
	if (srv->stopping)
		return;
	srv->stopping = 1;
	srv->quiesce_at = mono_now() + srv->opts->shutdown_delay;
	if (srv->last_request == 0)
		srv->last_request = mono_now() - 1.0;
	log_info("stopping: /readyz fails; still accepting for the shutdown delay",
	    "signal", why, NULL);
}

/* After the delay: stop accepting; in-flight requests finish. */
static void
quiesce(struct server *srv)
{
	MHD_socket fd;

	srv->quiesced = 1;
	srv->stop_deadline = time(NULL) + STOP_GRACE;
	fd = MHD_quiesce_daemon(srv->tls);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	log_info("stopping: no new connections, finishing in-flight requests", NULL);
}

static int
loop(struct server *srv)
{
	struct epoll_event ev[8];
	struct signalfd_siginfo si;
	uint64_t ticks;
	int i, n;

	for (;;) {
		/* Stop once nothing is in flight and no request has started for a
		 * second: a keep-alive client may have sent its next request before
		 * it read our "Connection: close". */
		if (srv->stopping && !srv->quiesced && mono_now() >= srv->quiesce_at)
			quiesce(srv);
		if (srv->quiesced && ((srv->in_flight == 0 &&
		    mono_now() - srv->last_request >= 1.0) || time(NULL) >= srv->stop_deadline))
			return 0;
		n = epoll_wait(srv->epfd, ev, 8, next_timeout(srv,
		    srv->stopping && !srv->quiesced ? 100 : 1000));
		if (n == -1 && errno != EINTR) {
			log_error("epoll_wait failed", "error", strerror(errno), NULL);
			return 1;
		}
		for (i = 0; i < n; i++) {
			if (ev[i].data.fd == srv->sigfd &&
			    read(srv->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				begin_stop(srv, si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
			if (ev[i].data.fd == srv->timerfd &&
			    read(srv->timerfd, &ticks, sizeof(ticks)) == (ssize_t)sizeof(ticks)) {
				reload_config(srv);
				load_certs(srv, 0);
				sweep_deadlines(srv);
			}
		}
		MHD_run(srv->tls);
		MHD_run(srv->plain);
	}
}

static void
register_metrics(struct server *srv)
{
	static const char *const result[] = { "result", NULL };
	static const double buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01,
	    0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
	static const char *const results[] = { "patched", "unchanged", "denied",
	    "error" };
	size_t i;

	srv->m_requests = metrics_register("pipewarden_webhook_requests_total",
	    "Admission requests answered, by result.", METRIC_COUNTER, result, NULL, 0);
	srv->m_duration = metrics_register("pipewarden_webhook_request_duration_seconds",
	    "Time from the first byte of a request to its answer.", METRIC_HISTOGRAM,
	    NULL, buckets, (int)(sizeof(buckets) / sizeof(buckets[0])));
	srv->m_cert_expiry = metrics_register(
	    "pipewarden_webhook_cert_expiry_timestamp_seconds",
	    "notAfter of the serving certificate, as a Unix time.", METRIC_GAUGE,
	    NULL, NULL, 0);
	srv->m_reload_errors = metrics_register("pipewarden_config_reload_errors_total",
	    "Config reloads that failed; the previous config stayed in force.",
	    METRIC_COUNTER, NULL, NULL, 0);
	/* Every series exists from the start, so rate() works at once. */
	for (i = 0; i < sizeof(results) / sizeof(results[0]); i++)
		metrics_add(srv->m_requests, 0, results[i]);
	metrics_add(srv->m_reload_errors, 0);
}

/* Let the process hold as many descriptors as connections need. */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* The one event loop: SIGTERM and SIGINT on a signalfd, a 1 s timer (reloads,
 * deadlines), both daemons listening.  Return 0, or -1 (logged). */
static int
open_loop(struct server *srv)
{
	const struct server_options *opts = srv->opts;
	struct itimerspec its;
	sigset_t mask;
	char port[16];

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((srv->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) == -1 ||
	    (srv->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK)) == -1 ||
	    (srv->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		goto fail;
	memset(&its, 0, sizeof(its));
	its.it_interval.tv_sec = its.it_value.tv_sec = 1;
	timerfd_settime(srv->timerfd, 0, &its, NULL);
	if ((srv->tls = start_listening(srv, 1, opts->port)) == NULL) {
		snprintf(port, sizeof(port), "%u", opts->port);
		log_error("cannot listen for HTTPS", "port", port, "error", strerror(errno), NULL);
		return -1;
	}
	if ((srv->plain = start_listening(srv, 0, opts->metrics_port)) == NULL) {
		snprintf(port, sizeof(port), "%u", opts->metrics_port);
		log_error("cannot listen for metrics", "port", port, "error", strerror(errno),
		    NULL);
		return -1;
	}
	if (epoll_add(srv->epfd, daemon_fd(srv->tls)) == -1 ||
	    epoll_add(srv->epfd, daemon_fd(srv->plain)) == -1 ||
	    epoll_add(srv->epfd, srv->sigfd) == -1 || epoll_add(srv->epfd, srv->timerfd) == -1)
		goto fail;
	return 0;
fail:
	log_error("cannot set up the event loop", "error", strerror(errno), NULL);
	return -1;
}

int
server_run(const struct server_options *opts, struct config *cfg)
{
	struct server srv;
	char port[16], mport[16];
	int rc = 1;

	memset(&srv, 0, sizeof(srv));
	srv.opts = opts;
	/* the server now owns cfg */
	srv.cfg = cfg;
	cfg = NULL;
	srv.epfd = srv.sigfd = srv.timerfd = -1;
	file_watch_init(&srv.cfg_watch, opts->config_path);
	certstore_init(&srv.certs, opts->cert_path, opts->key_path);
	certstore_serve(&srv.certs);
	register_metrics(&srv);
	raise_fd_limit();
	load_certs(&srv, 1);

	if (open_loop(&srv) == -1)
		goto out;
	snprintf(port, sizeof(port), "%u", opts->port);
	snprintf(mport, sizeof(mport), "%u", opts->metrics_port);
	log_info("serving", "version", opts->version, "port", port, "metricsPort", mport,
	    "address", opts->address ? opts->address : "", NULL);
	rc = loop(&srv);
	log_info("stopped", NULL);
out:
	if (srv.tls != NULL)
		MHD_stop_daemon(srv.tls);
	if (srv.plain != NULL)
		MHD_stop_daemon(srv.plain);
	if (srv.epfd != -1)
		close(srv.epfd);
	if (srv.sigfd != -1)
		close(srv.sigfd);
	if (srv.timerfd != -1)
		close(srv.timerfd);
	certstore_release(&srv.certs);
	config_free(srv.cfg);
	metrics_free_all();
	arena_free_all();
	return rc;
}
