/* SPDX-License-Identifier: MIT */
/* fpwalk.h: the pieces of test-fpwalk.c in two files (one is built without
 * frame pointers). */
#ifndef GOSHM_TEST_FPWALK_H
#define GOSHM_TEST_FPWALK_H

#include <stdint.h>

typedef int (*fpw_fn)(void **pcs, int max);
/* Call fn with junk in the frame-pointer register (fpwalk-nofp.c). */
int fpw_nofp(fpw_fn fn, void **pcs, int max, uintptr_t junk);

#endif
