#include "budget.h"

int
budget_charge(struct budget *b, size_t *charged, size_t total)
{
	size_t limit = total > BUDGET_LARGE_BODY ? BUDGET_TOTAL - BUDGET_SMALL_RESERVE :
	    BUDGET_TOTAL;

	if (total <= *charged)
		return 0;
	if (b->held > limit || total - *charged > limit - b->held) {
		budget_return(b, charged);
		return -1;
	}
	b->held += total - *charged;
	*charged = total;
	return 0;
}

void
budget_return(struct budget *b, size_t *charged)
{
	b->held -= *charged;
	*charged = 0;
}
