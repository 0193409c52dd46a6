#include <stdlib.h>

#include "conns.h"

struct conn *
conns_open(struct conns *l, int fd, double deadline)
{
	struct conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->fd = fd;
	c->deadline = deadline;
	c->next = l->head;
	if (l->head != NULL)
		l->head->prev = c;
	l->head = c;
	return c;
}

void
conns_close(struct conns *l, struct conn *c)
{
	if (c == NULL)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c);
}

void
conns_deadline(struct conn *c, double deadline, int tighten)
{
	if (!tighten || deadline < c->deadline)
		c->deadline = deadline;
}

int
conns_sweep(struct conns *l, double now, void (*cut)(int fd))
{
	struct conn *c;
	int n = 0;

	for (c = l->head; c != NULL; c = c->next) {
		if (c->cut || now < c->deadline)
			continue;
		c->cut = 1;
		cut(c->fd);
		n++;
	}
	return n;
}
