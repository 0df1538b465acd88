#include <stdio.h>

typedef int (*op_fn)(int, int);

static int add(int a, int b) { return a + b; }
static int sub(int a, int b) { return a - b; }
int mul(int a, int b) { return a * b; }
int divide(int a, int b) { return b ? a / b : 0; }

op_fn ops[] = {add, sub, mul, divide};
static const op_fn const_ops[] = {mul, add};

struct handler {
    const char *name;
    op_fn fn;
    int (*unary)(int);
};

static int negate(int x) { return -x; }
int square(int x) { return x * x; }

struct handler handlers[] = {
    {"add", add, negate},
    {"mul", mul, square},
};

int apply(op_fn f, int a, int b) { return f(a, b); }

int main(void) {
    for (int i = 0; i < 4; i++) {
        printf("ops[%d](12, 4) = %d\n", i, ops[i](12, 4));
    }
    for (int i = 0; i < 2; i++) {
        printf("%s: %d %d\n", handlers[i].name, handlers[i].fn(6, 7), handlers[i].unary(5));
    }
    printf("const: %d %d\n", const_ops[0](3, 3), const_ops[1](3, 3));
    printf("same pointer: %d\n", ops[2] == &mul && handlers[1].fn == mul);
    printf("apply: %d\n", apply(sub, 10, 3));
    return 0;
}
