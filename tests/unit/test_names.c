#include "../../common/names.h"
#include "check.h"

int
main(void)
{
	char v[LABEL_VALUE_MAX + 1];
	char longname[200];
	size_t i;

	names_label_value("aks-pool", v);
	CHECK_STR(v, "aks-pool");
	names_label_value("Linux Large (x64)", v);
	CHECK_STR(v, "Linux-Large--x64");
	names_label_value("  -pool_1.  ", v);
	CHECK_STR(v, "pool_1");
	names_label_value("***", v);
	CHECK_STR(v, "");
	names_label_value("Pool/ümlaut", v);
	CHECK_STR(v, "Pool---mlaut");
	for (i = 0; i < sizeof(longname) - 1; i++)
		longname[i] = i == 62 ? ' ' : 'a';
	longname[sizeof(longname) - 1] = '\0';
	names_label_value(longname, v);
	CHECK(strlen(v) == 62);		/* cut at 63, trailing '-' trimmed */

	CHECK(names_glob_match("keda-placeholder*", "keda-placeholder"));
	CHECK(names_glob_match("keda-placeholder*", "KEDA-Placeholder-1"));
	CHECK(!names_glob_match("keda-placeholder*", "agent-keda-placeholder"));
	CHECK(names_glob_match("*placeholder*", "agent-keda-placeholder-x"));
	CHECK(names_glob_match("agent-?", "agent-7"));
	CHECK(!names_glob_match("agent-?", "agent-77"));
	CHECK(names_glob_match("*", ""));
	CHECK(!names_glob_match("", "x"));
	CHECK(names_glob_match("a*b*c", "aXXbYYc"));
	CHECK(!names_glob_match("a*b*c", "aXXbYY"));

	CHECK(names_is_dns_subdomain("azp-pat"));
	CHECK(names_is_dns_subdomain("a.b-c"));
	CHECK(!names_is_dns_subdomain("Azp"));
	CHECK(!names_is_dns_subdomain("-a"));
	CHECK(!names_is_dns_subdomain(""));
	CHECK(names_resource_exact("nvidia.com/gpu"));
	CHECK(names_resource_exact("hugepages-2Mi"));
	CHECK(names_resource_exact("example.com/dongle"));
	CHECK(!names_resource_exact("cpu"));
	CHECK(!names_resource_exact("memory"));
	CHECK(!names_resource_exact("ephemeral-storage"));
	CHECK(!names_resource_exact("kubernetes.io/something"));
	CHECK(names_is_guid("00000000-0000-0000-0000-000000000000"));
	CHECK(!names_is_guid("00000000-0000-0000-0000-00000000000"));
	CHECK(!names_is_guid("0000000000000-0000-0000-00000000000-"));
	return check_done();
}
