#ifndef PW_FILE_H
#define PW_FILE_H

#include <stddef.h>
#include <sys/types.h>

/* Read a whole file of at most max bytes.  Return a NUL-terminated copy the
 * caller frees, with its length in *lenp; NULL with errno set on failure
 * (EFBIG when the file is larger than max). */
char	*file_read(const char *path, size_t max, size_t *lenp);

/*
 * Notice that a file changed, by what stat(2) says of the path with links
 * followed: a ConfigMap or Secret volume update swaps the "..data" symlink,
 * which changes the inode the path resolves to; an edit in place changes the
 * size or the modification or change time.
 */
struct file_watch {
	const char	*path;		/* borrowed */
	dev_t		 dev;
	ino_t		 ino;
	off_t		 size;
	long long	 mtime_ns;
	long long	 ctime_ns;
	int		 exists;
};

/* Start watching path and record its present state. */
void	file_watch_init(struct file_watch *w, const char *path);

/* Return 1 if the file changed since the last call (or init), else 0. */
int	file_watch_changed(struct file_watch *w);

#endif
