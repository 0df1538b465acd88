/* sim SDK: the part of Darwin's <stdlib.h> that darwin-sim implements. Prototype-only. */
#ifndef _SIM_STDLIB_H_
#define _SIM_STDLIB_H_

#include <stddef.h>

#define EXIT_SUCCESS 0
#define EXIT_FAILURE 1
#ifndef NULL
#define NULL ((void *)0)
#endif

void *malloc(size_t size);
void *calloc(size_t count, size_t size);
void *realloc(void *ptr, size_t size);
void free(void *ptr);
int abs(int i);
int atoi(const char *str);
void exit(int status) __attribute__((__noreturn__));
void abort(void) __attribute__((__noreturn__, __cold__));

#endif
