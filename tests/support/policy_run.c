/*
 * policy-run CONFIG [REVIEW]: run the pure core (review_parse, policy_decide,
 * review_answer) on one AdmissionReview (a file, or stdin) and print what the
 * webhook would answer.  Exit 0 with the AdmissionReview response, 3 with
 * the 400 body when the request is not one the webhook can parse, 2 on
 * usage or config errors.  The golden-case runner and fuzzing share it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/config.h"
#include "../../common/file.h"
#include "../../webhook/policy.h"
#include "../../webhook/review.h"

#define REVIEW_MAX	(8 * 1024 * 1024)

static char *
read_stdin(size_t *lenp)
{
	size_t cap = 65536, len = 0, n;
	char *p = malloc(cap), *q;

	while (p != NULL && (n = fread(p + len, 1, cap - len - 1, stdin)) > 0) {
		len += n;
		if (len + 1 == cap) {
			if (cap > REVIEW_MAX || (q = realloc(p, cap * 2)) == NULL) {
				free(p);
				return NULL;
			}
			p = q;
			cap *= 2;
		}
	}
	if (p != NULL)
		p[len] = '\0';
	*lenp = len;
	return p;
}

int
main(int argc, char **argv)
{
	struct policy_decision d;
	struct policy_input in;
	struct config *cfg;
	struct review rv;
	char err[512], *body, *answer;
	size_t len, alen;
	int rc = 0;

	if (argc != 2 && argc != 3) {
		fprintf(stderr, "usage: policy-run CONFIG [REVIEW]\n");
		return 2;
	}
	if ((cfg = config_load(argv[1], err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	body = argc == 3 ? file_read(argv[2], REVIEW_MAX, &len) : read_stdin(&len);
	if (body == NULL) {
		fprintf(stderr, "policy-run: cannot read the review\n");
		config_free(cfg);
		return 2;
	}
	if (review_parse(body, len, &rv, err, sizeof(err)) == -1) {
		answer = review_error_body(400, err, &alen);
		rc = 3;
	} else {
		in.operation = rv.operation;
		in.kind = rv.kind;
		in.group = rv.group;
		in.pod = rv.object;
		in.version = "0.1.0";
		if (policy_decide(cfg, &in, &d) == -1) {
			fprintf(stderr, "policy-run: out of memory\n");
			answer = NULL;
		} else {
			answer = review_answer(rv.uid, &d, &alen);
		}
		policy_decision_release(&d);
		review_release(&rv);
	}
	if (answer != NULL)
		printf("%s\n", answer);
	else
		rc = 1;
	free(answer);
	free(body);
	config_free(cfg);
	return rc;
}
