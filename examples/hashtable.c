/* SPDX-License-Identifier: MIT */
/*
 * hashtable.c: a persistent hash table of strings, kept in the heap under
 * the root "example.hashtable".  Chained buckets; the bucket array doubles
 * when the table holds twice as many entries as buckets.  Every pointer in
 * it is a heap address, so any process, and any run after a reboot, finds
 * the same table at the same place.
 *
 *     hashtable put KEY VALUE     sets KEY
 *     hashtable get KEY           prints KEY's value (exit 1: none)
 *     hashtable del KEY           removes KEY (exit 1: none)
 *     hashtable list              prints every KEY=VALUE, and the count
 *
 * One writer at a time: a lock in the heap is left out to keep the example
 * short (two processes could race only in creating the table, which
 * aclheap_root_cas() settles).
 */
#include <aclheap.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROOT		"example.hashtable"
#define FIRST_BUCKETS	16

struct entry {
	struct entry *next;
	uint64_t hash;
	char *key;		/* in the heap too */
	char *value;
};

struct table {
	uint64_t nbuckets;
	uint64_t count;
	struct entry **buckets;
};

static void __attribute__((noreturn))
die(const char *what)
{
	fprintf(stderr, "hashtable: %s: %s\n", what, aclheap_last_error());
	exit(2);
}

/* FNV-1a: fixed, so the hash of a key is the same in every run. */
static uint64_t
hash(const char *s)
{
	uint64_t h = UINT64_C(14695981039346656037);

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
	return h;
}

static char *
heap_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = aclmalloc(n);

	if (p == NULL)
		die("aclmalloc");
	return memcpy(p, s, n);
}

/* The table, made and published the first time. */
static struct table *
table(void)
{
	struct table *t = aclheap_root_get(ROOT);
	int rc;

	if (t != NULL)
		return t;
	if (errno != ENOENT)
		die("root " ROOT);
	if ((t = aclmalloc(sizeof(*t))) == NULL ||
	    (t->buckets = aclcalloc(FIRST_BUCKETS, sizeof(*t->buckets))) ==
	    NULL)
		die("aclmalloc");
	t->nbuckets = FIRST_BUCKETS;
	t->count = 0;
	if ((rc = aclheap_root_cas(ROOT, NULL, t)) == 0)
		return t;
	aclfree(t->buckets);
	aclfree(t);
	if (rc != -EAGAIN)
		die("root " ROOT);
	/* Another process made it first: use theirs. */
	if ((t = aclheap_root_get(ROOT)) == NULL)
		die("root " ROOT);
	return t;
}

static struct entry **
find(struct table *t, const char *key, uint64_t h)
{
	struct entry **e = &t->buckets[h % t->nbuckets];

	for (; *e != NULL; e = &(*e)->next)
		if ((*e)->hash == h && strcmp((*e)->key, key) == 0)
			return e;
	return e;
}

static void
grow(struct table *t)
{
	uint64_t n = t->nbuckets * 2, i;
	struct entry **b, *e, *next;

	if ((b = aclcalloc(n, sizeof(*b))) == NULL)
		return;		/* longer chains, still correct */
	for (i = 0; i < t->nbuckets; i++)
		for (e = t->buckets[i]; e != NULL; e = next) {
			next = e->next;
			e->next = b[e->hash % n];
			b[e->hash % n] = e;
		}
	aclfree(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

static int
put(struct table *t, const char *key, const char *value)
{
	uint64_t h = hash(key);
	struct entry **e = find(t, key, h), *n;
	char *v = heap_strdup(value);

	if (*e != NULL) {
		aclfree((*e)->value);
		(*e)->value = v;
		return 0;
	}
	if ((n = aclmalloc(sizeof(*n))) == NULL)
		die("aclmalloc");
	n->hash = h;
	n->key = heap_strdup(key);
	n->value = v;
	n->next = NULL;
	*e = n;
	if (++t->count > 2 * t->nbuckets)
		grow(t);
	return 0;
}

static int
del(struct table *t, const char *key)
{
	struct entry **e = find(t, key, hash(key)), *d = *e;

	if (d == NULL)
		return 1;
	*e = d->next;
	aclfree(d->key);
	aclfree(d->value);
	aclfree(d);
	t->count--;
	return 0;
}

int
main(int argc, char **argv)
{
	struct table *t;
	struct entry **e, *x;
	uint64_t i;

	if (argc < 2) {
usage:
		fprintf(stderr, "usage: hashtable put KEY VALUE | get KEY | "
		    "del KEY | list\n");
		return 2;
	}
	if (aclheap_attach(NULL) != 0)
		die("cannot attach");
	t = table();
	if (strcmp(argv[1], "put") == 0 && argc == 4)
		return put(t, argv[2], argv[3]);
	if (strcmp(argv[1], "get") == 0 && argc == 3) {
		e = find(t, argv[2], hash(argv[2]));
		if (*e == NULL) {
			fprintf(stderr, "hashtable: no key '%s'\n", argv[2]);
			return 1;
		}
		printf("%s\n", (*e)->value);
		return 0;
	}
	if (strcmp(argv[1], "del") == 0 && argc == 3) {
		if (del(t, argv[2]) != 0) {
			fprintf(stderr, "hashtable: no key '%s'\n", argv[2]);
			return 1;
		}
		return 0;
	}
	if (strcmp(argv[1], "list") == 0 && argc == 2) {
		for (i = 0; i < t->nbuckets; i++)
			for (x = t->buckets[i]; x != NULL; x = x->next)
				printf("%s=%s\n", x->key, x->value);
		printf("%llu entr%s in %llu buckets\n",
		    (unsigned long long)t->count, t->count == 1 ? "y" : "ies",
		    (unsigned long long)t->nbuckets);
		return 0;
	}
	goto usage;
}
