// Prints the kernel ABI values package dirty mirrors, as "NAME VALUE" lines,
// from the installed kernel headers. Built and run by TestABIMatchesHeaders.
// Names a header does not define (PAGEMAP_SCAN before linux-libc-dev 6.7,
// UFFD_FEATURE_WP_ASYNC before 6.7, PAGE_IS_GUARD before 6.14) are left out.
#include <stdio.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>

#define P(name) printf("%s %#llx\n", #name, (unsigned long long)(name))
#define S(type) printf("sizeof_%s %#llx\n", #type, (unsigned long long)sizeof(struct type))

int main(void)
{
#ifdef PAGEMAP_SCAN
	P(PAGEMAP_SCAN);
	P(PM_SCAN_WP_MATCHING);
	P(PM_SCAN_CHECK_WPASYNC);
	P(PAGE_IS_WPALLOWED);
	P(PAGE_IS_WRITTEN);
	P(PAGE_IS_FILE);
	P(PAGE_IS_PRESENT);
	P(PAGE_IS_SWAPPED);
	P(PAGE_IS_PFNZERO);
	P(PAGE_IS_HUGE);
	P(PAGE_IS_SOFT_DIRTY);
	S(pm_scan_arg);
	S(page_region);
#endif
#ifdef PAGE_IS_GUARD
	P(PAGE_IS_GUARD);
#endif
	P(UFFD_API);
	P(UFFDIO_API);
	P(UFFDIO_REGISTER);
	P(UFFDIO_UNREGISTER);
	P(UFFDIO_WRITEPROTECT);
	P(UFFDIO_REGISTER_MODE_WP);
	P(UFFDIO_WRITEPROTECT_MODE_WP);
	P(_UFFDIO_REGISTER);
	P(_UFFDIO_UNREGISTER);
	P(_UFFDIO_WRITEPROTECT);
	P(_UFFDIO_API);
#ifdef UFFD_USER_MODE_ONLY
	P(UFFD_USER_MODE_ONLY);
#endif
#ifdef UFFD_FEATURE_WP_UNPOPULATED
	P(UFFD_FEATURE_WP_UNPOPULATED);
#endif
#ifdef UFFD_FEATURE_WP_ASYNC
	P(UFFD_FEATURE_WP_ASYNC);
#endif
	S(uffdio_api);
	S(uffdio_range);
	S(uffdio_register);
	S(uffdio_writeprotect);
	return 0;
}
