/* SPDX-License-Identifier: MIT */
/*
 * hello.c: the README's example as a whole program, with every error
 * checked.  Each run adds a node to a list kept in the persistent heap
 * under the root "list" and prints the list: run it twice, restart the
 * daemon, reboot, and the list is still there at the same addresses.
 *
 *     cc hello.c $(pkg-config --cflags --libs aclheap) -o hello
 *     ./hello
 *
 * It needs a running aclheapd; without one it says so and exits 1.
 */
#include <aclheap.h>

#include <errno.h>
#include <stdio.h>

struct node {
	struct node *next;
	int value;
};

int
main(void)
{
	struct node *head, *n, *p;
	int rc, count = 0;

	/*
	 * Attach first: the heap's address range must be free in this
	 * process, and the first thing main() does is the surest time.
	 * Every call would attach by itself, but here an error is clearer.
	 */
	if ((rc = aclheap_attach(NULL)) != 0) {
		fprintf(stderr, "hello: cannot attach: %s\n",
		    aclheap_last_error());
		return 1;
	}
	head = aclheap_root_get("list");
	if (head == NULL && errno != ENOENT) {
		fprintf(stderr, "hello: root 'list': %s\n",
		    aclheap_last_error());
		return 1;
	}
	if ((n = aclmalloc(sizeof(*n))) == NULL) {
		fprintf(stderr, "hello: aclmalloc: %s\n", aclheap_last_error());
		return 1;
	}
	n->value = head != NULL ? head->value + 1 : 42;
	n->next = head;
	/* Only if the list is still what we read: two runs at once must
	 * not lose a node. */
	if ((rc = aclheap_root_cas("list", head, n)) != 0) {
		aclfree(n);
		if (rc == -EAGAIN)
			fprintf(stderr, "hello: another process changed the "
			    "list meanwhile; run again\n");
		else
			fprintf(stderr, "hello: root 'list': %s\n",
			    aclheap_last_error());
		return 1;
	}
	for (p = n; p != NULL; p = p->next)
		count++;
	printf("list: %d node%s, the newest holds %d at %p\n", count,
	    count == 1 ? "" : "s", n->value, (void *)n);
	return 0;
}
