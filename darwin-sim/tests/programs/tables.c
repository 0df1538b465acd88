// Pointers in data (rebased at launch): function-pointer tables, string tables, pointers to globals, a
// const table (in __DATA_CONST), a switch jump table, recursion and static locals.
// exit: 0
// stdout: add(6,3)=9 sub(6,3)=3 mul(6,3)=18 div(6,3)=2
// stdout: names: alpha beta gamma delta
// stdout: ptr chain: 11 22 33
// stdout: switch: zero one two many many
// stdout: fib(20)=6765 calls=3
// stdout: total=42
#include <stdio.h>

typedef int (*binop)(int, int);
static int add(int a, int b) { return a + b; }
static int sub(int a, int b) { return a - b; }
static int mul(int a, int b) { return a * b; }
static int div_(int a, int b) { return a / b; }

struct op { const char *name; binop fn; };
static const struct op ops[] = {{"add", add}, {"sub", sub}, {"mul", mul}, {"div", div_}};
const char *names[] = {"alpha", "beta", "gamma", "delta"};

int a = 11, b = 22, c = 33;
int *chain[] = {&a, &b, &c};
int *const fixed[] = {&c, &b, &a};

__attribute__((noinline)) static const char *word(int n) {
    switch (n) {
    case 0: return "zero";
    case 1: return "one";
    case 2: return "two";
    case 3: return "many";
    case 4: return "many";
    default: return "lots";
    }
}

static int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static int calls(void) {
    static int n;
    return ++n;
}

int main(void) {
    for (unsigned i = 0; i < sizeof ops / sizeof ops[0]; i++)
        printf("%s%s(6,3)=%d", i ? " " : "", ops[i].name, ops[i].fn(6, 3));
    printf("\nnames:");
    for (int i = 0; i < 4; i++) printf(" %s", names[i]);
    printf("\nptr chain: %d %d %d\n", *chain[0], *chain[1], *chain[2]);
    printf("switch:");
    for (int i = 0; i < 5; i++) printf(" %s", word(i));
    calls();
    calls();
    printf("\nfib(20)=%d calls=%d\n", fib(20), calls());
    printf("total=%d\n", *fixed[0] + *fixed[2] - 2);
    return 0;
}
