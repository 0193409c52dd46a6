#ifndef PW_RESOURCES_H
#define PW_RESOURCES_H

#include <cjson/cJSON.h>

#include "../common/config.h"
#include "patch.h"
#include "policy.h"

/* Resource names one profile may name. */
#define RESOURCES_MAX	16

/*
 * Fill the agent container's requests and limits from profile pr into the
 * container's resources group, where the container leaves them unset (see
 * resources.c); deny (d) a value past the profile's max or one that is not
 * a quantity.  pod_res is the pod's spec.resources, or NULL.  Return 0
 * (d may be a denial), or -1 when out of memory.
 */
int	resources_fill(const struct profile *pr, const cJSON *container, const char *cname,
	    const cJSON *pod_res, struct patch_group *resources, struct policy_decision *d);

#endif
