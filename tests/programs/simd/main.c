#include <stdio.h>

typedef float v4f __attribute__((vector_size(16)));

float data[256];
static double weights[64];

float dot(const float *a, const float *b, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) {
        s += a[i] * b[i];
    }
    return s;
}

v4f scale4(v4f v, float k) { return v * k; }

int main(void) {
    for (int i = 0; i < 256; i++) {
        data[i] = (float)(i % 17) * 0.5f;
    }
    for (int i = 0; i < 64; i++) {
        weights[i] = 1.0 / (i + 1);
    }
    double w = 0;
    for (int i = 0; i < 64; i++) {
        w += weights[i] * data[i];
    }
    v4f v = {1, 2, 3, 4};
    v4f r = scale4(v, 2.5f);
    printf("dot=%.1f w=%.4f r=%.1f,%.1f,%.1f,%.1f\n", dot(data, data + 128, 128), w, r[0], r[1], r[2], r[3]);
    return 0;
}
