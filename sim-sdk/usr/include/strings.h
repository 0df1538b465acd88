/* sim SDK: the part of Darwin's <strings.h> that darwin-sim implements. Prototype-only. */
#ifndef _SIM_STRINGS_H_
#define _SIM_STRINGS_H_

#include <stddef.h>

void bzero(void *s, size_t n);

#endif
