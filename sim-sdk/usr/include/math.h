/* sim SDK: the part of Darwin's <math.h> that darwin-sim implements. Prototype-only. */
#ifndef _SIM_MATH_H_
#define _SIM_MATH_H_

#define HUGE_VAL __builtin_huge_val()
#define INFINITY __builtin_inff()
#define NAN __builtin_nanf("")
#define M_E 2.71828182845904523536028747135266250
#define M_PI 3.14159265358979323846264338327950288
#define M_PI_2 1.57079632679489661923132169163975144
#define M_SQRT2 1.41421356237309504880168872420969808
#define isnan(x) __builtin_isnan(x)
#define isinf(x) __builtin_isinf(x)
#define isfinite(x) __builtin_isfinite(x)

double sqrt(double x);
double sin(double x);
double cos(double x);
double tan(double x);
double atan2(double y, double x);
double pow(double x, double y);
double exp(double x);
double exp2(double x);
double log(double x);
double ldexp(double x, int e);
double floor(double x);
double ceil(double x);
double fabs(double x);
double fmod(double x, double y);

/* Not called by programs directly: clang emits calls to these on Darwin (pow(10, x) and sin(x) beside cos(x)). */
double __exp10(double x);
struct __double2 { double __sinval; double __cosval; };
struct __double2 __sincos_stret(double x);

#endif
