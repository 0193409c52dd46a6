/*
 * The metrics and health endpoint (/metrics, /healthz) on its own thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <microhttpd.h>

#include "../common/buf.h"
#include "../common/log.h"
#include "janitor.h"

static enum MHD_Result
health_serve(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **req_cls)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	unsigned int status = MHD_HTTP_OK;
	struct buf b;
	size_t len;
	char *text;

	(void)version;
	(void)upload_data;
	(void)req_cls;
	if (*upload_data_size > 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	buf_init(&b, 16 * 1024 * 1024);
	if (strcmp(method, "GET") == 0 && strcmp(url, "/metrics") == 0) {
		metrics_render(&b);
	} else if (strcmp(method, "GET") == 0 && strcmp(url, "/healthz") == 0) {
		/* A wedged loop fails: no cycle finished for ten intervals. */
		struct janitor *j = cls;
		double since = mono() - (double)__atomic_load_n(&j->last_cycle_done,
		    __ATOMIC_RELAXED);
		long long interval = __atomic_load_n(&j->health_interval, __ATOMIC_RELAXED);
		if (since > 10.0 * (double)interval) {
			buf_addf(&b, "no cycle has finished for %.0f s (ten intervals: %lld s)\n",
			    since, 10 * interval);
			status = MHD_HTTP_SERVICE_UNAVAILABLE;
		} else {
			buf_adds(&b, "ok\n");
		}
	} else {
		buf_adds(&b, "no such path (serving /metrics, /healthz)\n");
		status = MHD_HTTP_NOT_FOUND;
	}
	if ((text = buf_detach(&b, &len)) == NULL)
		return MHD_NO;
	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

int
health_start(struct janitor *j, unsigned int port)
{
	static const unsigned int modes[] = {
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_DUAL_STACK,
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL,	/* no IPv6 */
	};
	char text[16];
	size_t i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]) && j->metrics == NULL; i++)
		j->metrics = MHD_start_daemon(modes[i], (uint16_t)port, NULL, NULL, health_serve,
		    j, MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
		    MHD_OPTION_END);
	if (j->metrics != NULL)
		return 0;
	snprintf(text, sizeof(text), "%u", port);
	log_error("cannot listen for metrics", "port", text, "error", strerror(errno), NULL);
	return -1;
}
