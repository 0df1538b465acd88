/* sim SDK: the part of Darwin's <unistd.h> that darwin-sim implements. Prototype-only. */
#ifndef _SIM_UNISTD_H_
#define _SIM_UNISTD_H_

#include <sys/types.h>

#define STDIN_FILENO 0
#define STDOUT_FILENO 1
#define STDERR_FILENO 2

ssize_t write(int fildes, const void *buf, size_t nbyte);
void _exit(int status) __attribute__((__noreturn__));
int usleep(useconds_t microseconds);
pid_t getpid(void);

#endif
