/*
 * The real-node suite's pod sandbox ("pause") image: sleep until a signal,
 * then exit 0.  Static, so the image holds nothing else.
 */
#include <signal.h>
#include <unistd.h>

static void
done(int sig)
{
	(void)sig;
	_exit(0);
}

int
main(void)
{
	signal(SIGTERM, done);
	signal(SIGINT, done);
	for (;;)
		pause();
}
