#include <math.h>
#include <stdio.h>

double hypotenuse(double a, double b) { return sqrt(a * a + b * b); }

static float lerp(float a, float b, float t) { return a + (b - a) * t; }

const double coefficients[] = {1.5, -2.25, 0.125, 3.0};

double poly(double x) {
    double r = 0;
    for (int i = 3; i >= 0; i--) {
        r = r * x + coefficients[i];
    }
    return r;
}

int main(void) {
    printf("%.4f\n", hypotenuse(3.0, 4.0));
    printf("%.3f %.3f\n", sin(0.5), cos(0.5));
    printf("%g %e\n", pow(2.0, 10.0), 12345.678);
    printf("%.2f\n", lerp(1.0f, 3.0f, 0.25f));
    printf("%.5f %.1f %.1f\n", poly(0.5), floor(-2.5), fabs(-7.25));
    printf("%.3f\n", fmod(10.0, 3.0) + atan2(1.0, 1.0));
    return 0;
}
