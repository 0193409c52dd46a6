/*
 * The ceiling for make bench: the least an HTTPS admission webhook can do
 * with the same libmicrohttpd, GnuTLS and certificate: read the body, answer
 * a fixed AdmissionReview response, in one of libmicrohttpd's server modes
 * (make bench measures each and compares the webhook with the fastest):
 *   epoll    one internal polling thread, epoll
 *   pool     a pool of two such threads (one per core here)
 *   threads  a thread per connection
 *
 * usage: ceiling MODE PORT CERT KEY ANSWER_FILE [PRIORITIES]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "../../common/file.h"

static char	*answer;
static size_t	 answer_len;

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *data, size_t *size, void **req_cls)
{
	static int marker;
	struct MHD_Response *r;
	enum MHD_Result ret;

	(void)cls; (void)url; (void)method; (void)version; (void)data;
	if (*req_cls == NULL) {
		*req_cls = &marker;
		return MHD_YES;
	}
	if (*size > 0) {
		*size = 0;	/* read and drop the body */
		return MHD_YES;
	}
	r = MHD_create_response_from_buffer(answer_len, answer, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(r, "Content-Type", "application/json");
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

int
main(int argc, char **argv)
{
	struct MHD_Daemon *d;
	char *cert, *key;
	size_t n;
	sigset_t mask;
	int sig;

	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS;
	unsigned int pool = 0;

	if (argc != 6 && argc != 7)
		return 2;
	if (strcmp(argv[1], "epoll") == 0)
		flags |= MHD_USE_EPOLL;
	else if (strcmp(argv[1], "pool") == 0) {
		flags |= MHD_USE_EPOLL;
		pool = 2;
	} else if (strcmp(argv[1], "threads") == 0)
		flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
	else
		return 2;
	cert = file_read(argv[3], 1 << 20, &n);
	key = file_read(argv[4], 1 << 20, &n);
	answer = file_read(argv[5], 1 << 24, &answer_len);
	if (cert == NULL || key == NULL || answer == NULL)
		return 2;
	d = MHD_start_daemon(flags,
	    (uint16_t)(int)strtol(argv[2], NULL, 10), NULL, NULL, handle, NULL,
	    MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_HTTPS_MEM_KEY, key,
	    MHD_OPTION_HTTPS_PRIORITIES, argc == 7 ? argv[6] :
	    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
	    MHD_OPTION_CONNECTION_LIMIT, 1000u, MHD_OPTION_CONNECTION_TIMEOUT, 120u,
	    pool > 0 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, pool,
	    MHD_OPTION_END);
	if (d == NULL)
		return 1;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sigwait(&mask, &sig);
	MHD_stop_daemon(d);
	free(cert);
	free(key);
	free(answer);
	return 0;
}
