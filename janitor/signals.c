/*
 * SIGTERM and SIGINT, read from a signalfd, and every wait that a signal
 * must cut short (the interval, Retry-After, backoff).
 */
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "../common/buf.h"
#include "../common/log.h"
#include "janitor.h"

/* Read a pending SIGTERM/SIGINT, waiting at most ms milliseconds. */
static void
read_signal(struct janitor *j, int ms)
{
	struct signalfd_siginfo si;
	struct pollfd pfd;

	pfd.fd = j->sigfd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, ms) > 0 && read(j->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		j->stopping = 1;
		log_info("stopping: no new deletion starts", "signal",
		    si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM", NULL);
	}
}

/* Wait up to seconds, or until SIGTERM/SIGINT.  Return -1 when stopping. */
int
signals_wait(void *cls, double seconds)
{
	struct janitor *j = cls;
	double until = mono() + seconds, left;

	while (!j->stopping && (left = until - mono()) > 0)
		read_signal(j, left > 1e6 ? 1000000000 : (int)(left * 1000) + 1);
	return j->stopping ? -1 : 0;
}

/* Poll for a signal without waiting. */
void
signals_check(struct janitor *j)
{
	if (!j->stopping)
		read_signal(j, 0);
}

/* For the HTTP client: whether to give up a request in flight. */
int
signals_stopping(void *cls)
{
	struct janitor *j = cls;

	signals_check(j);
	return j->stopping;
}
