#include <stdlib.h>

#include "../../common/buf.h"
#include "check.h"

int
main(void)
{
	struct buf b;
	char *s;
	size_t len;

	buf_init(&b, 16);
	CHECK(buf_adds(&b, "0123456789") == 0);
	CHECK(buf_addf(&b, "%d", 12345) == 0);
	CHECK_STR(b.data, "012345678912345");
	CHECK(buf_adds(&b, "xy") == -1);	/* 17 > 16: refused */
	CHECK(b.failed && b.toobig);
	CHECK(buf_adds(&b, "z") == -1);		/* sticky */
	CHECK(buf_detach(&b, &len) == NULL);
	buf_release(&b);

	buf_init(&b, 1024);
	buf_add_json_string(&b, "a\"b\\c\n\x01/é");
	CHECK_STR(b.data, "\"a\\\"b\\\\c\\n\\u0001/é\"");
	buf_reset(&b);
	buf_add_pointer_segment(&b, "pipewarden.io/pool~x");
	CHECK_STR(b.data, "pipewarden.io~1pool~0x");
	s = buf_detach(&b, &len);
	CHECK_STR(s, "pipewarden.io~1pool~0x");
	CHECK(len == 22);
	CHECK(b.data == NULL && b.len == 0);
	free(s);
	buf_release(&b);

	/* An empty buffer detaches as an empty string. */
	buf_init(&b, 8);
	s = buf_detach(&b, &len);
	CHECK(s != NULL && len == 0 && s[0] == '\0');
	free(s);

	/* With a step, memory held stays within a step of what is used (a
	 * request body is charged on the bytes received). */
	{
		static char chunk[1000];
		size_t i;
		int within = 1;

		buf_init(&b, 4 << 20);
		b.step = 64 * 1024;
		for (i = 0; i < 3000; i++) {
			buf_add(&b, chunk, sizeof(chunk));
			within &= b.cap >= b.len + 1 && b.cap <= b.len + 1 + b.step;
		}
		CHECK(within && !b.failed && b.len == 3000000);
		buf_release(&b);
	}
	return check_done();
}
