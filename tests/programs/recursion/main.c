#include <stdio.h>

int is_even(unsigned n);

int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static long ackermann(long m, long n) {
    if (m == 0) return n + 1;
    if (n == 0) return ackermann(m - 1, 1);
    return ackermann(m - 1, ackermann(m, n - 1));
}

int main(void) {
    printf("fib(20)=%d\n", fib(20));
    printf("ack(2,3)=%ld\n", ackermann(2, 3));
    printf("even(10)=%d even(7)=%d\n", is_even(10), is_even(7));
    return 0;
}
