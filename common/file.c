#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"

char *
file_read(const char *path, size_t max, size_t *lenp)
{
	struct stat st;
	char *data = NULL;
	size_t len = 0, cap;
	ssize_t n;
	int fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	if (fstat(fd, &st) == -1)
		goto fail;
	cap = st.st_size > 0 && (size_t)st.st_size <= max ? (size_t)st.st_size + 1 : 4096;
	if ((data = malloc(cap)) == NULL)
		goto fail;
	for (;;) {
		if (len + 1 >= cap) {
			char *p;
			if (cap > max + 1) {
				errno = EFBIG;
				goto fail;
			}
			if ((p = realloc(data, cap * 2)) == NULL)
				goto fail;
			data = p;
			cap *= 2;
		}
		n = read(fd, data + len, cap - len - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			errno = EFBIG;
			goto fail;
		}
	}
	close(fd);
	data[len] = '\0';
	*lenp = len;
	return data;
fail:
	saved = errno;
	free(data);
	close(fd);
	errno = saved;
	return NULL;
}

static void
file_watch_read(const char *path, struct file_watch *now)
{
	struct stat st;

	memset(now, 0, sizeof(*now));
	now->path = path;
	if (stat(path, &st) == -1)
		return;
	now->exists = 1;
	now->dev = st.st_dev;
	now->ino = st.st_ino;
	now->size = st.st_size;
	now->mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
	now->ctime_ns = (long long)st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec;
}

void
file_watch_init(struct file_watch *w, const char *path)
{
	file_watch_read(path, w);
}

int
file_watch_changed(struct file_watch *w)
{
	struct file_watch now;
	int changed;

	file_watch_read(w->path, &now);
	changed = now.exists != w->exists || now.dev != w->dev ||
	    now.ino != w->ino || now.size != w->size ||
	    now.mtime_ns != w->mtime_ns || now.ctime_ns != w->ctime_ns;
	*w = now;
	return changed;
}
