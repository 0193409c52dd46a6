#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../common/file.h"
#include "check.h"

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
}

int
main(void)
{
	char dir[] = "/tmp/pw-test-file-XXXXXX", a[128], b[128], link[128], tmp[128];
	struct file_watch w;
	size_t len;
	char *s;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	snprintf(link, sizeof(link), "%s/link", dir);
	snprintf(tmp, sizeof(tmp), "%s/tmp", dir);
	write_file(a, "first");
	write_file(b, "second");
	CHECK(symlink("a", link) == 0);

	file_watch_init(&w, link);
	CHECK(w.exists);
	CHECK(!file_watch_changed(&w));
	/* A ConfigMap-style swap: the link now resolves to another file. */
	CHECK(symlink("b", tmp) == 0);
	CHECK(rename(tmp, link) == 0);
	CHECK(file_watch_changed(&w));
	CHECK(!file_watch_changed(&w));
	/* An edit in place that changes the size. */
	write_file(b, "second, longer");
	CHECK(file_watch_changed(&w));
	unlink(b);
	CHECK(file_watch_changed(&w));
	CHECK(!w.exists);

	s = file_read(a, 1024, &len);
	CHECK_STR(s, "first");
	CHECK(len == 5);
	free(s);
	CHECK(file_read(a, 3, &len) == NULL);	/* larger than max */
	CHECK(file_read(b, 1024, &len) == NULL);	/* gone */
	unlink(a);
	unlink(link);
	rmdir(dir);
	return check_done();
}
