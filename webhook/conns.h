#ifndef PW_CONNS_H
#define PW_CONNS_H

/*
 * Every open TLS connection with its deadline: when it must have delivered
 * its next whole request (libmicrohttpd's own timeout counts only silence,
 * so a client sending a byte now and then would hold its slot forever).
 * Pure: the caller passes the time, and what to do with a connection past
 * its deadline.
 */
struct conn {
	struct conn	*prev, *next;
	int		 fd;
	double		 deadline;	/* monotonic seconds */
	int		 cut;		/* already cut by a sweep */
};

struct conns {
	struct conn	*head;
};

/* A connection opened on fd.  Return it (the list owns it), or NULL when
 * out of memory (it is then bounded by libmicrohttpd's timeout only). */
struct conn	*conns_open(struct conns *l, int fd, double deadline);

/* It closed: unlink and free it.  conns_close(l, NULL) does nothing. */
void	conns_close(struct conns *l, struct conn *c);

/* Set its deadline; with tighten, only to an earlier one. */
void	conns_deadline(struct conn *c, double deadline, int tighten);

/* Call cut(fd) once for each connection past its deadline at now.  Return
 * how many were cut. */
int	conns_sweep(struct conns *l, double now, void (*cut)(int fd));

#endif
