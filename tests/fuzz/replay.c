/*
 * Replay: feed every file named (or every file in the directories named)
 * to the harness once.  Prints "N passed, 0 failed"; an invariant failure
 * aborts with the file's name on stderr.
 */
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#include "../../common/file.h"
#include "fuzz.h"

static int
one(const char *path)
{
	size_t len;
	char *data = file_read(path, 16 * 1024 * 1024, &len);

	if (data == NULL)
		return 0;
	fprintf(stderr, "%s\n", path);	/* the last line names a crashing input */
	LLVMFuzzerTestOneInput((const uint8_t *)data, len);
	free(data);
	return 1;
}

int
main(int argc, char **argv)
{
	struct dirent *e;
	struct stat st;
	char path[4096];
	long n = 0;
	int i;
	DIR *d;

	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode) && (d = opendir(argv[i])) != NULL) {
			while ((e = readdir(d)) != NULL) {
				if (e->d_name[0] == '.')
					continue;
				snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
				n += one(path);
			}
			closedir(d);
		} else {
			n += one(argv[i]);
		}
	}
	printf("%ld passed, 0 failed\n", n);
	return 0;
}
