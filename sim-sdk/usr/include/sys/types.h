/* sim SDK: the integer types of <sys/types.h> with Darwin's arm64 sizes. Prototype-only: no implementation. */
#ifndef _SIM_SYS_TYPES_H_
#define _SIM_SYS_TYPES_H_

#include <stddef.h>

typedef long ssize_t;
typedef int pid_t;
typedef long long off_t;
typedef long time_t;
typedef unsigned int useconds_t;
typedef unsigned int uid_t;
typedef unsigned int gid_t;
typedef unsigned short mode_t;

#endif
