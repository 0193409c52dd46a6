/*
 * The webhook's bounds as plain data: the memory all bodies may hold
 * (charged on bytes received, a share kept for small bodies) and the
 * connections' deadlines.
 */
#include <stdio.h>
#include <string.h>

#include "../../webhook/budget.h"
#include "../../webhook/conns.h"
#include "check.h"

static int cut_fds[8], ncut;

static void
cut(int fd)
{
	if (ncut < 8)
		cut_fds[ncut++] = fd;
}

static void
test_budget(void)
{
	struct budget b = { 0 };
	size_t big[6] = { 0 }, small[17] = { 0 }, pod = 0;
	int i, ok = 1;

	/* Five 4 MiB bodies fit in what large bodies may take; a sixth does
	 * not, and gives its charge back. */
	for (i = 0; i < 5; i++)
		ok &= budget_charge(&b, &big[i], 4 * 1024 * 1024) == 0;
	CHECK(ok && b.held == 20 * 1024 * 1024);
	CHECK(budget_charge(&b, &big[5], 1024) == 0 && big[5] == 1024);
	CHECK(budget_charge(&b, &big[5], 2 * 1024 * 1024) == -1 && big[5] == 0);
	CHECK(b.held == 20 * 1024 * 1024);
	/* The kept share is for small bodies: sixteen of 256 KiB still fit. */
	for (i = 0, ok = 1; i < 16; i++)
		ok &= budget_charge(&b, &small[i], BUDGET_LARGE_BODY) == 0;
	CHECK(ok && b.held == BUDGET_TOTAL);
	CHECK(budget_charge(&b, &pod, 2048) == -1 && pod == 0);
	/* Charged on what arrived: a body grows, its charge with it. */
	budget_return(&b, &small[0]);
	CHECK(small[0] == 0 && b.held == BUDGET_TOTAL - BUDGET_LARGE_BODY);
	CHECK(budget_charge(&b, &pod, 2048) == 0 && budget_charge(&b, &pod, 4096) == 0 &&
	    pod == 4096 && budget_charge(&b, &pod, 100) == 0 && pod == 4096);
	budget_return(&b, &pod);
	for (i = 0; i < 6; i++)
		budget_return(&b, &big[i]);
	for (i = 1; i < 16; i++)
		budget_return(&b, &small[i]);
	CHECK(b.held == 0);
}

static void
test_conns(void)
{
	struct conns l = { NULL };
	struct conn *a, *c, *d;

	a = conns_open(&l, 3, 10.0);
	c = conns_open(&l, 4, 20.0);
	d = conns_open(&l, 5, 30.0);
	CHECK(a != NULL && c != NULL && d != NULL && l.head == d);
	/* A request came in: its deadline only tightens. */
	conns_deadline(c, 25.0, 1);
	CHECK(c->deadline == 20.0);
	conns_deadline(c, 5.0, 1);
	CHECK(c->deadline == 5.0);
	/* Between requests it may idle longer. */
	conns_deadline(a, 100.0, 0);
	CHECK(a->deadline == 100.0);
	ncut = 0;
	CHECK(conns_sweep(&l, 15.0, cut) == 1 && ncut == 1 && cut_fds[0] == 4);
	/* Cut once, however often swept. */
	CHECK(conns_sweep(&l, 35.0, cut) == 1 && ncut == 2 && cut_fds[1] == 5);
	conns_close(&l, c);
	conns_close(&l, NULL);
	CHECK(l.head == d && d->next == a && a->prev == d);
	conns_close(&l, d);
	conns_close(&l, a);
	CHECK(l.head == NULL);
}

int
main(void)
{
	test_budget();
	test_conns();
	return check_done();
}
