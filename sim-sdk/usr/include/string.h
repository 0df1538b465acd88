/* sim SDK: the part of Darwin's <string.h> that darwin-sim implements. Prototype-only. */
#ifndef _SIM_STRING_H_
#define _SIM_STRING_H_

#include <stddef.h>

#ifndef NULL
#define NULL ((void *)0)
#endif

void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t len);
void *memset(void *b, int c, size_t len);
int memcmp(const void *s1, const void *s2, size_t n);
size_t strlen(const char *s);
int strcmp(const char *s1, const char *s2);
int strncmp(const char *s1, const char *s2, size_t n);
char *strcpy(char *restrict dst, const char *restrict src);
/* Darwin's: fills len bytes with the 16-byte pattern, repeated. clang emits calls to it for fill loops. */
void memset_pattern16(void *b, const void *pattern16, size_t len);

#endif
