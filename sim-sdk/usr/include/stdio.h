/* sim SDK: the part of Darwin's <stdio.h> that darwin-sim implements. Prototype-only. */
#ifndef _SIM_STDIO_H_
#define _SIM_STDIO_H_

#include <stddef.h>

/* Opaque, as far as programs are concerned; darwin-sim recognises its own stdout and stderr objects. */
typedef struct __sFILE FILE;

extern FILE *__stdoutp;
extern FILE *__stderrp;
#define stdout __stdoutp
#define stderr __stderrp

#define EOF (-1)
#ifndef NULL
#define NULL ((void *)0)
#endif

#define __sim_printflike(fmt, args) __attribute__((__format__(__printf__, fmt, args)))

int printf(const char *restrict format, ...) __sim_printflike(1, 2);
int fprintf(FILE *restrict stream, const char *restrict format, ...) __sim_printflike(2, 3);
int sprintf(char *restrict str, const char *restrict format, ...) __sim_printflike(2, 3);
int snprintf(char *restrict str, size_t size, const char *restrict format, ...) __sim_printflike(3, 4);
int vprintf(const char *restrict format, __builtin_va_list ap) __sim_printflike(1, 0);
int vfprintf(FILE *restrict stream, const char *restrict format, __builtin_va_list ap) __sim_printflike(2, 0);
int vsnprintf(char *restrict str, size_t size, const char *restrict format, __builtin_va_list ap)
    __sim_printflike(3, 0);
int puts(const char *s);
int putchar(int c);
int fputs(const char *restrict s, FILE *restrict stream);
int fputc(int c, FILE *stream);
size_t fwrite(const void *restrict ptr, size_t size, size_t nitems, FILE *restrict stream);
int fflush(FILE *stream);

#endif
