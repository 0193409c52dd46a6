#ifndef PW_NAMES_H
#define PW_NAMES_H

#include <stddef.h>

/*
 * Kubernetes and Azure DevOps names.
 */

#define LABEL_VALUE_MAX	63

/* Write into out (at least LABEL_VALUE_MAX + 1 bytes) a valid label value
 * made from an Azure DevOps pool name: every character outside
 * [A-Za-z0-9-_.] becomes '-', at most 63 characters are kept, and
 * non-alphanumeric characters are trimmed from both ends.  "Linux Large
 * (x64)" becomes "Linux-Large--x64".  May be empty. */
void	names_label_value(const char *pool, char out[LABEL_VALUE_MAX + 1]);

/* Whether s is a valid DNS-1123 subdomain (a Secret or Lease name). */
int	names_is_dns_subdomain(const char *s);

/* Whether name matches the shell-style glob pattern ('*' any run, '?' one
 * character; no other specials), compared case-insensitively as Azure
 * DevOps compares agent names. */
int	names_glob_match(const char *pattern, const char *name);

/* Whether Kubernetes requires a container's request of this resource to
 * equal its limit (and a request to come with a limit): every resource that
 * may not be overcommitted, i.e. extended resources (a domain other than
 * kubernetes.io: nvidia.com/gpu) and hugepages-*. */
int	names_resource_exact(const char *resource);

/* Whether s looks like a GUID (8-4-4-4-12 hex digits). */
int	names_is_guid(const char *s);

#endif
