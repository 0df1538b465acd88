/* sim SDK: the part of Darwin's <sched.h> that darwin-sim implements. Prototype-only. */
#ifndef _SIM_SCHED_H_
#define _SIM_SCHED_H_

int sched_yield(void);

#endif
