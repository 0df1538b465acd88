// libm through the shims, printed with %f, %e and %g.
// exit: 0
// stdout: sqrt(2)=1.414214 sin(1)=0.841471 cos(1)=0.540302 tan(1)=1.557408
// stdout: atan2(1,2)=0.463648 pow(2,10)=1024 exp(1)=2.718282 log(10)=2.302585
// stdout: floor(-2.5)=-3 ceil(-2.5)=-2 fabs(-3.25)=3.25 fmod(10,3)=1
// stdout: pow(10,x)=1000 pow(2,x)=32 ldexp=48
// stdout: e: 1.234568e+04 1.000000e-10 -5.000000e-01
// stdout: g: 0.0001 1e-05 123457 1.23457e+06 100
// stdout: sincos: 0.479426 0.877583
#include <math.h>
#include <stdio.h>

volatile double three = 3.0, half = 0.5;

int main(void) {
    printf("sqrt(2)=%f sin(1)=%f cos(1)=%f tan(1)=%f\n", sqrt(2.0), sin(1.0), cos(1.0), tan(1.0));
    printf("atan2(1,2)=%f pow(2,10)=%g exp(1)=%f log(10)=%f\n", atan2(1.0, 2.0), pow(2.0, 10.0), exp(1.0),
           log(10.0));
    printf("floor(-2.5)=%g ceil(-2.5)=%g fabs(-3.25)=%g fmod(10,3)=%g\n", floor(-2.5), ceil(-2.5), fabs(-3.25),
           fmod(10.0, 3.0));
    double x = three;
    printf("pow(10,x)=%g pow(2,x)=%g ldexp=%g\n", pow(10.0, x), pow(2.0, x + 2), ldexp(x, 4));
    printf("e: %e %e %e\n", 12345.678, 1e-10, -0.5);
    printf("g: %g %g %g %g %g\n", 0.0001, 0.00001, 123456.7, 1234567.0, 100.0);
    double h = half;
    printf("sincos: %f %f\n", sin(h), cos(h));
    return 0;
}
