/* SPDX-License-Identifier: MIT */
/*
 * mksizeclasses: generate shm/sizeclasses.h, the small-object size-class
 * tables of the goshm allocator.
 *
 * Usage: mksizeclasses [OUTFILE]      (writes to stdout when OUTFILE is omitted)
 *
 * Policy (the Go runtime's size-class policy, see Go's
 * src/runtime/mksizeclasses.go, re-implemented here, plus one goshm rule):
 *
 *  1. Candidate sizes start at 8 and advance by an alignment step that grows
 *     with the size: 8 below 32, 16 up to 255, then size/8 (rounded down to
 *     a power of two) up to 2047, then 256 up to 32768 (GS_MAX_SMALL_SIZE).
 *     From 128 on, a step is at most 1/8 of the size it leads to, which
 *     bounds the round-up waste between neighbouring candidates by 12.5%.
 *  2. goshm rule: every object of 16 bytes or more must be 16-byte aligned,
 *     so a candidate >= 16 that is not a multiple of 16 is dropped (this
 *     removes Go's 24-byte candidate).  It is applied before rules 3-5.
 *  3. Each candidate gets the smallest page count whose span leaves a tail
 *     (span % size) of at most 1/8 of the span.
 *  4. A candidate with the same page count and object count as the class
 *     before it replaces that class's size (the larger size wins).
 *  5. Like Go, a class is then widened to the largest size that still packs
 *     the same number of objects into its span, rounded down to a multiple
 *     of GS_LARGE_SIZE_DIV (128) so the size->class lookup stays exact.  The
 *     object count and page count do not change; the tail shrinks.
 *
 * Every assumption the allocator relies on is checked here, and the program
 * exits non-zero without writing anything if one fails:
 *  - the class count equals EXPECTED_NUM_CLASSES (bump it deliberately);
 *  - sizes strictly increase, 8 is the only size below 16 and all other
 *    sizes are multiples of 16; sizes above GS_SMALL_SIZE_MAX are multiples
 *    of GS_LARGE_SIZE_DIV, sizes at or below it multiples of GS_SMALL_SIZE_DIV;
 *  - consecutive candidates >= 128 bytes are at most 1/8 of the larger apart;
 *  - round-up waste between classes stays within the pinned ROUNDUP_* bounds;
 *  - tail waste <= span/8;
 *  - objects per span <= npages*1024 and <= 65535; npages fits in uint8_t;
 *  - the 32-bit division magic gives floor(o/size) for every offset o in
 *    0..span (brute force);
 *  - both lookup tables return the smallest class >= n for every n in
 *    1..GS_MAX_SMALL_SIZE (brute force).
 *
 * The output depends on nothing but this file (not on OUTFILE), so
 * regenerating into another path yields identical bytes.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_SHIFT 13
#define PAGE_SIZE (1u << PAGE_SHIFT)
#define MAX_SMALL_SIZE 32768u
#define SMALL_SIZE_DIV 8u
#define SMALL_SIZE_MAX 1024u
#define LARGE_SIZE_DIV 128u
#define MIN_ALIGN_SIZE 16u /* objects >= this many bytes are 16-byte aligned */

/* Pinned after the first run; a policy change must update it on purpose. */
#define EXPECTED_NUM_CLASSES 67

/*
 * Round-up waste bound actually guaranteed per class (pinned, checked).  The
 * 12.5% bound of rule 1 holds between neighbouring candidates, but merging
 * (rule 4) and widening (rule 5) open larger gaps between classes, in Go as
 * here (worst: 4864 after 4096, 15.77%).  So for classes above
 * ROUNDUP_SMALL_LIMIT: (size - prev - 1) / size < ROUNDUP_MAX_PCT / 100.
 * At or below it, where alignment dominates, classes are at most
 * ROUNDUP_SMALL_GAP bytes apart.
 */
#define ROUNDUP_SMALL_LIMIT 128u
#define ROUNDUP_SMALL_GAP 16u
#define ROUNDUP_MAX_PCT 16u

#define MAX_CLASSES 256 /* class ids are stored in uint8_t */
#define MAX_CANDIDATES 512
#define NUM_CLASS8 (SMALL_SIZE_MAX / SMALL_SIZE_DIV + 1)
#define NUM_CLASS128 ((MAX_SMALL_SIZE - SMALL_SIZE_MAX) / LARGE_SIZE_DIV + 1)

struct size_class {
	uint32_t size;   /* bytes per object */
	uint32_t npages; /* pages per span */
	uint32_t nelems; /* objects per span */
	uint32_t magic;  /* 32-bit reciprocal for offset -> object index */
};

static struct size_class classes[MAX_CLASSES];
static int nclasses;

static uint32_t dropped[MAX_CANDIDATES]; /* candidates removed by rule 2 */
static int ndropped;

static uint8_t class8[NUM_CLASS8];
static uint8_t class128[NUM_CLASS128];

static int failures;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "mksizeclasses: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	failures++;
}

static int is_pow2(uint32_t x) { return x != 0 && (x & (x - 1)) == 0; }

static uint32_t span_bytes(const struct size_class *c) { return c->npages * PAGE_SIZE; }

/* Rule 1: Go's alignment progression, re-bumped whenever size hits a power of two. */
static uint32_t next_align(uint32_t size, uint32_t align)
{
	if (!is_pow2(size))
		return align;
	if (size >= 2048)
		return 256;
	if (size >= 128)
		return size / 8;
	if (size >= 32)
		return 16;
	return align;
}

/* Rule 2 (goshm): sizes >= 16 must be multiples of 16. */
static int c_aligned(uint32_t size)
{
	return size < MIN_ALIGN_SIZE || size % MIN_ALIGN_SIZE == 0;
}

/* Rule 3: fewest pages whose tail is at most 1/8 of the span. */
static uint32_t pages_for(uint32_t size)
{
	uint32_t span = PAGE_SIZE;
	while (span % size > span / 8)
		span += PAGE_SIZE;
	return span / PAGE_SIZE;
}

static void build_classes(void)
{
	uint32_t align = 8;
	uint32_t prev_candidate = 0;

	nclasses = 1; /* class 0: large objects / no class */
	memset(&classes[0], 0, sizeof classes[0]);

	for (uint32_t size = 8; size <= MAX_SMALL_SIZE; size += align) {
		align = next_align(size, align);
		if (!is_pow2(align)) {
			fail("alignment step %" PRIu32 " at size %" PRIu32 " is not a power of two",
			     align, size);
			return;
		}
		if (!c_aligned(size)) {
			if (ndropped < MAX_CANDIDATES)
				dropped[ndropped++] = size;
			continue;
		}
		if (size >= 128 && size - prev_candidate > size / 8)
			fail("candidate %" PRIu32 " is more than 1/8 above candidate %" PRIu32, size,
			     prev_candidate);
		prev_candidate = size;

		uint32_t npages = pages_for(size);
		uint32_t nelems = npages * PAGE_SIZE / size;
		struct size_class *prev = &classes[nclasses - 1];

		/* Rule 4: same pages and same object count -> keep only the larger size. */
		if (nclasses > 1 && prev->npages == npages && prev->nelems == nelems) {
			prev->size = size;
			continue;
		}
		if (nclasses == MAX_CLASSES) {
			fail("more than %d size classes", MAX_CLASSES - 1);
			return;
		}
		classes[nclasses].size = size;
		classes[nclasses].npages = npages;
		classes[nclasses].nelems = nelems;
		nclasses++;
	}

	/* Rule 5: widen each class to the largest 128-multiple with the same packing. */
	for (int i = 1; i < nclasses; i++) {
		struct size_class *c = &classes[i];
		uint32_t wide = (span_bytes(c) / c->nelems) & ~(LARGE_SIZE_DIV - 1);
		if (wide > c->size)
			c->size = wide;
	}

	for (int i = 1; i < nclasses; i++)
		classes[i].magic = (uint32_t)(UINT32_MAX / classes[i].size + 1);
}

static void check_classes(void)
{
	if (nclasses != EXPECTED_NUM_CLASSES)
		fail("number of size classes is %d, expected %d (update EXPECTED_NUM_CLASSES "
		     "only if the policy change is intended)", nclasses, EXPECTED_NUM_CLASSES);
	if (classes[0].size != 0 || classes[0].npages != 0 || classes[0].nelems != 0)
		fail("class 0 must be all zero");
	if (nclasses < 2 || classes[nclasses - 1].size != MAX_SMALL_SIZE)
		fail("last class must be %u bytes", MAX_SMALL_SIZE);

	for (int i = 1; i < nclasses; i++) {
		const struct size_class *c = &classes[i];
		uint32_t span = span_bytes(c);

		uint32_t prev = classes[i - 1].size;

		if (c->size <= prev) {
			fail("class %d: size %" PRIu32 " does not exceed previous size %" PRIu32,
			     i, c->size, prev);
			continue;
		}
		if (c->size <= ROUNDUP_SMALL_LIMIT ? c->size - prev > ROUNDUP_SMALL_GAP
		    : 100u * (c->size - prev - 1) >= ROUNDUP_MAX_PCT * c->size)
			fail("class %d: round-up waste from %" PRIu32 " to %" PRIu32
			     " exceeds the pinned bound", i, prev, c->size);
		if (c->size < MIN_ALIGN_SIZE ? c->size != 8 : c->size % MIN_ALIGN_SIZE != 0)
			fail("class %d: size %" PRIu32 " breaks the 16-byte alignment rule", i, c->size);
		if (c->size > SMALL_SIZE_MAX ? c->size % LARGE_SIZE_DIV != 0
					     : c->size % SMALL_SIZE_DIV != 0)
			fail("class %d: size %" PRIu32 " is not exactly reachable by the lookup tables",
			     i, c->size);
		if (c->npages == 0 || c->npages > UINT8_MAX)
			fail("class %d: npages %" PRIu32 " does not fit uint8_t", i, c->npages);
		if (c->nelems != span / c->size)
			fail("class %d: nelems %" PRIu32 " != span/size %" PRIu32, i, c->nelems,
			     span / c->size);
		if (span % c->size > span / 8)
			fail("class %d: tail waste %" PRIu32 " exceeds 1/8 of the %" PRIu32 "-byte span",
			     i, span % c->size, span);
		if (c->nelems > c->npages * 1024u)
			fail("class %d: %" PRIu32 " objects exceed %" PRIu32 " (1024 per page)", i,
			     c->nelems, c->npages * 1024u);
		if (c->nelems > 65535u)
			fail("class %d: %" PRIu32 " objects do not fit uint16_t", i, c->nelems);

		/* Division magic, brute force over every offset of the span (object
		 * starts and interior offsets alike), plus the one-past-the-end offset. */
		int bad = 0;
		for (uint32_t o = 0; o <= span && !bad; o++) {
			uint32_t q = (uint32_t)(((uint64_t)o * c->magic) >> 32);
			if (q != o / c->size) {
				fail("class %d (size %" PRIu32 "): 32-bit magic %" PRIu32 " gives %" PRIu32
				     " for offset %" PRIu32 ", expected %" PRIu32,
				     i, c->size, c->magic, q, o, o / c->size);
				bad = 1;
			}
		}
	}
}

static uint8_t smallest_class_for(uint32_t n)
{
	for (int i = 0; i < nclasses; i++)
		if (classes[i].size >= n)
			return (uint8_t)i;
	return 0; /* unreachable for n <= MAX_SMALL_SIZE once the last class is 32768 */
}

static void build_and_check_lookup(void)
{
	for (uint32_t i = 0; i < NUM_CLASS8; i++)
		class8[i] = smallest_class_for(i * SMALL_SIZE_DIV);
	for (uint32_t i = 0; i < NUM_CLASS128; i++)
		class128[i] = smallest_class_for(SMALL_SIZE_MAX + i * LARGE_SIZE_DIV);

	for (uint32_t n = 1; n <= MAX_SMALL_SIZE; n++) {
		uint32_t got = n <= SMALL_SIZE_MAX
			? class8[(n + SMALL_SIZE_DIV - 1) / SMALL_SIZE_DIV]
			: class128[(n - SMALL_SIZE_MAX + LARGE_SIZE_DIV - 1) / LARGE_SIZE_DIV];
		uint32_t want = smallest_class_for(n);
		if (got != want || want == 0) {
			fail("lookup of %" PRIu32 " bytes gives class %" PRIu32 ", expected %" PRIu32,
			     n, got, want);
			return;
		}
	}
}

/* Worst-case waste of a class, counting round-up and tail (as Go's table does). */
static double max_waste(int i)
{
	const struct size_class *c = &classes[i];
	uint32_t span = span_bytes(c);
	uint32_t roundup = c->size - classes[i - 1].size - 1;
	return (double)((uint64_t)roundup * c->nelems + span % c->size) / span;
}

/* "attr" is GS_SC_UNUSED for tables a TU may leave unreferenced, "" for the
 * lookup tables that gs_size_to_class() always references (marking those
 * unused trips clang's -Wused-but-marked-unused). */
static void print_array(FILE *f, const char *decl, const char *attr, const uint32_t *v, int n,
			int per_line)
{
	fprintf(f, "static const %s%s = {", decl, attr);
	for (int i = 0; i < n; i++) {
		if (i % per_line == 0)
			fprintf(f, "\n\t");
		else
			fputc(' ', f);
		fprintf(f, "%" PRIu32 ",", v[i]);
	}
	fprintf(f, "\n};\n");
}

static void emit(FILE *f)
{
	uint32_t v[NUM_CLASS128 > MAX_CLASSES ? NUM_CLASS128 : MAX_CLASSES];

	fprintf(f,
		"/* SPDX-License-Identifier: MIT */\n"
		"/* Code generated by tools/mksizeclasses.c; DO NOT EDIT.\n"
		" *\n"
		" * Regenerate from the repository root with:\n"
		" *   cc -O2 -o /tmp/mksizeclasses tools/mksizeclasses.c && "
		"/tmp/mksizeclasses shm/sizeclasses.h\n"
		" *\n"
		" * Small-object size classes, following the Go runtime's policy plus the\n"
		" * goshm rule that every object of 16 bytes or more is 16-byte aligned\n"
		" * (all sizes >= 16 are multiples of 16).  Candidate sizes removed by that\n"
		" * rule:");
	for (int i = 0; i < ndropped; i++)
		fprintf(f, " %" PRIu32, dropped[i]);
	fprintf(f, ".\n"
		" *\n"
		" * Guarantees (checked by the generator and tests/unit/test-sizeclasses.c):\n"
		" *  - tail waste (span %% size) <= 1/8 of the span;\n"
		" *  - round-up waste: sizes <= %u are at most %u bytes above the previous\n"
		" *    class; above that (size - previous size - 1) / size < %u%%;\n"
		" *  - nelems == npages * GS_PAGE_SIZE / size, <= 1024 per page;\n"
		" *  - (offset * divmagic) >> 32 == offset / size for 0 <= offset <= span;\n"
		" *  - gs_size_to_class(n) is the smallest class with size >= n.\n"
		" * \"max waste\" is the worst case over requests that land in the class:\n"
		" * (size - previous size - 1) per object plus the tail, relative to the span.\n"
		" *\n", ROUNDUP_SMALL_LIMIT, ROUNDUP_SMALL_GAP, ROUNDUP_MAX_PCT);
	fprintf(f, " * %-5s  %-9s  %-10s  %-7s  %-10s  %-9s\n", "class", "bytes/obj", "bytes/span",
		"objects", "tail waste", "max waste");
	for (int i = 1; i < nclasses; i++) {
		const struct size_class *c = &classes[i];
		fprintf(f, " * %5d  %9" PRIu32 "  %10" PRIu32 "  %7" PRIu32 "  %10" PRIu32 "  %8.2f%%\n",
			i, c->size, span_bytes(c), c->nelems, span_bytes(c) % c->size,
			100.0 * max_waste(i));
	}
	fprintf(f, " */\n\n");

	fprintf(f,
		"#ifndef GOSHM_SIZECLASSES_H\n"
		"#define GOSHM_SIZECLASSES_H\n"
		"\n"
		"#include <stddef.h> /* size_t */\n"
		"#include <stdint.h> /* uint*_t */\n"
		"\n"
		"#define GS_NUM_SIZE_CLASSES %d /* including class 0 (large objects / none) */\n"
		"#define GS_MAX_SMALL_SIZE %u\n"
		"#define GS_SMALL_SIZE_DIV %u\n"
		"#define GS_SMALL_SIZE_MAX %u\n"
		"#define GS_LARGE_SIZE_DIV %u\n"
		"#define GS_PAGE_SHIFT %d\n"
		"#define GS_PAGE_SIZE %u\n"
		"#define GS_CLASS_LAST_SIZE %" PRIu32 " /* == gs_class_size[GS_NUM_SIZE_CLASSES - 1] */\n"
		"\n"
		"#if defined(__GNUC__) || defined(__clang__)\n"
		"#define GS_SC_UNUSED __attribute__((unused))\n"
		"#else\n"
		"#define GS_SC_UNUSED\n"
		"#endif\n"
		"\n"
		"#ifdef __cplusplus\n"
		"#define GS_SC_STATIC_ASSERT static_assert\n"
		"#else\n"
		"#define GS_SC_STATIC_ASSERT _Static_assert\n"
		"#endif\n"
		"\n"
		"GS_SC_STATIC_ASSERT(GS_NUM_SIZE_CLASSES == %d, \"size class count changed\");\n"
		"GS_SC_STATIC_ASSERT(GS_CLASS_LAST_SIZE == GS_MAX_SMALL_SIZE,\n"
		"\t\t    \"the last size class must be GS_MAX_SMALL_SIZE\");\n"
		"GS_SC_STATIC_ASSERT(GS_PAGE_SIZE == 1 << GS_PAGE_SHIFT, \"page size\");\n"
		"\n",
		nclasses, MAX_SMALL_SIZE, SMALL_SIZE_DIV, SMALL_SIZE_MAX, LARGE_SIZE_DIV, PAGE_SHIFT,
		PAGE_SIZE, classes[nclasses - 1].size, nclasses);

	fprintf(f, "/* Bytes per object; class 0 is large/none (size 0). */\n");
	for (int i = 0; i < nclasses; i++)
		v[i] = classes[i].size;
	print_array(f, "uint32_t gs_class_size[GS_NUM_SIZE_CLASSES]", " GS_SC_UNUSED", v, nclasses, 8);

	fprintf(f, "\n/* Pages per span. */\n");
	for (int i = 0; i < nclasses; i++)
		v[i] = classes[i].npages;
	print_array(f, "uint8_t gs_class_npages[GS_NUM_SIZE_CLASSES]", " GS_SC_UNUSED", v, nclasses, 16);

	fprintf(f, "\n/* Objects per span: npages * GS_PAGE_SIZE / size. */\n");
	for (int i = 0; i < nclasses; i++)
		v[i] = classes[i].nelems;
	print_array(f, "uint16_t gs_class_nelems[GS_NUM_SIZE_CLASSES]", " GS_SC_UNUSED", v, nclasses, 12);

	fprintf(f, "\n/* UINT32_MAX / size + 1: object index = (offset * divmagic) >> 32. */\n");
	for (int i = 0; i < nclasses; i++)
		v[i] = classes[i].magic;
	print_array(f, "uint32_t gs_class_divmagic[GS_NUM_SIZE_CLASSES]", " GS_SC_UNUSED", v, nclasses, 6);

	fprintf(f, "\n/* Index (n + 7) / 8 for n <= GS_SMALL_SIZE_MAX. */\n");
	for (uint32_t i = 0; i < NUM_CLASS8; i++)
		v[i] = class8[i];
	print_array(f, "uint8_t gs_size_to_class8[GS_SMALL_SIZE_MAX / GS_SMALL_SIZE_DIV + 1]", "", v,
		    (int)NUM_CLASS8, 16);

	fprintf(f, "\n/* Index (n - 1024 + 127) / 128 for GS_SMALL_SIZE_MAX < n <= GS_MAX_SMALL_SIZE. */\n");
	for (uint32_t i = 0; i < NUM_CLASS128; i++)
		v[i] = class128[i];
	print_array(f,
		    "uint8_t gs_size_to_class128[(GS_MAX_SMALL_SIZE - GS_SMALL_SIZE_MAX) / "
		    "GS_LARGE_SIZE_DIV + 1]",
		    "", v, (int)NUM_CLASS128, 16);

	fprintf(f,
		"\n"
		"/* size (1..GS_MAX_SMALL_SIZE) -> class */\n"
		"static inline uint32_t gs_size_to_class(size_t n)\n"
		"{\n"
		"\treturn n <= GS_SMALL_SIZE_MAX\n"
		"\t\t? gs_size_to_class8[(n + GS_SMALL_SIZE_DIV - 1) / GS_SMALL_SIZE_DIV]\n"
		"\t\t: gs_size_to_class128[(n - GS_SMALL_SIZE_MAX + GS_LARGE_SIZE_DIV - 1) / "
		"GS_LARGE_SIZE_DIV];\n"
		"}\n"
		"\n"
		"#endif /* GOSHM_SIZECLASSES_H */\n");
}

int main(int argc, char **argv)
{
	if (argc > 2) {
		fprintf(stderr, "usage: %s [OUTFILE]\n", argv[0]);
		return 2;
	}

	build_classes();
	if (failures == 0)
		check_classes();
	if (failures == 0)
		build_and_check_lookup();
	if (failures != 0) {
		fprintf(stderr, "mksizeclasses: %d check(s) failed; nothing written\n", failures);
		return 1;
	}

	FILE *f = stdout;
	if (argc == 2) {
		f = fopen(argv[1], "w");
		if (f == NULL) {
			perror(argv[1]);
			return 1;
		}
	}
	emit(f);
	if (ferror(f) || (f != stdout ? fclose(f) : fflush(f)) != 0) {
		fprintf(stderr, "mksizeclasses: write to %s failed\n", argc == 2 ? argv[1] : "stdout");
		return 1;
	}
	return 0;
}
