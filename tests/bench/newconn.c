/*
 * A load client that opens a new TLS connection for every request, with a
 * full handshake (no session resumption, as client-go), and checks every
 * answer: HTTP 200 with "allowed":true and a patch.  h2load cannot do this:
 * it resumes sessions when it reconnects.
 *
 * usage: newconn PORT CA BODY_FILE THREADS SECONDS
 * prints: requests=N bad=N seconds=S p50_ms=X p99_ms=Y
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "../../common/file.h"

static SSL_CTX	*ctx;
static char	*request;
static size_t	 request_len;
static int	 port;
static double	 until;

struct worker {
	pthread_t	 t;
	long		 done, bad;
	double		*lat;
	size_t		 nlat, cap;
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
one(void)
{
	struct sockaddr_in sa;
	char buf[65536];
	size_t got = 0;
	int fd, n, ok = 0, one = 1;
	SSL *ssl;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return 0;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		close(fd);
		return 0;
	}
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "localhost");
	if (SSL_connect(ssl) == 1 && SSL_write(ssl, request, (int)request_len) == (int)request_len) {
		while (got < sizeof(buf) - 1 && (n = SSL_read(ssl, buf + got, (int)(sizeof(buf) - 1 - got))) > 0)
			got += (size_t)n;
		buf[got] = '\0';
		ok = strncmp(buf, "HTTP/1.1 200", 12) == 0 && strstr(buf, "\"allowed\":true") != NULL &&
		    strstr(buf, "\"patch\":\"") != NULL;
	}
	SSL_shutdown(ssl);
	SSL_free(ssl);
	close(fd);
	ERR_clear_error();
	return ok;
}

static void *
run(void *arg)
{
	struct worker *w = arg;
	double t;

	while ((t = now()) < until) {
		int ok = one();
		if (w->nlat == w->cap) {
			w->cap = w->cap ? w->cap * 2 : 4096;
			w->lat = realloc(w->lat, w->cap * sizeof(double));
		}
		w->lat[w->nlat++] = now() - t;
		w->done++;
		w->bad += !ok;
	}
	return NULL;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	struct worker *w;
	double *all, t0, secs;
	size_t n = 0, i, len;
	long done = 0, bad = 0;
	char *body;
	int threads;

	if (argc != 6)
		return 2;
	port = (int)strtol(argv[1], NULL, 10);
	threads = (int)strtol(argv[4], NULL, 10);
	body = file_read(argv[3], 1 << 24, &len);
	if (body == NULL || threads < 1)
		return 2;
	request = malloc(len + 256);
	request_len = (size_t)snprintf(request, len + 256, "POST /mutate?timeout=10s HTTP/1.1\r\n"
	    "Host: localhost\r\nContent-Type: application/json\r\nConnection: close\r\n"
	    "Content-Length: %zu\r\n\r\n", len);
	memcpy(request + request_len, body, len);
	request_len += len;
	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_load_verify_locations(ctx, argv[2], NULL);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	w = calloc((size_t)threads, sizeof(*w));
	t0 = now();
	until = t0 + strtod(argv[5], NULL);
	for (i = 0; i < (size_t)threads; i++)
		pthread_create(&w[i].t, NULL, run, &w[i]);
	for (i = 0; i < (size_t)threads; i++) {
		pthread_join(w[i].t, NULL);
		done += w[i].done;
		bad += w[i].bad;
		n += w[i].nlat;
	}
	secs = now() - t0;
	all = malloc((n + 1) * sizeof(double));
	for (n = 0, i = 0; i < (size_t)threads; i++) {
		memcpy(all + n, w[i].lat, w[i].nlat * sizeof(double));
		n += w[i].nlat;
		free(w[i].lat);
	}
	qsort(all, n, sizeof(double), cmp);
	printf("requests=%ld bad=%ld seconds=%.3f p50_ms=%.3f p99_ms=%.3f\n", done, bad, secs,
	    n ? all[n / 2] * 1e3 : 0, n ? all[(size_t)((double)n * 0.99)] * 1e3 : 0);
	free(all);
	free(w);
	free(body);
	free(request);
	SSL_CTX_free(ctx);
	return 0;
}
