/* bar grows past its padding, so it moves; addToBar is untouched and reaches the new bar through its stub. */
static volatile int sink;

int bar(void) {
    for (int i = 0; i < 8; i++) {
        sink += i;
        sink ^= 0x55;
        sink -= i * 3;
        sink |= 1;
    }
    sink = 0;
    return 7 + sink;
}

void addToBar(int *acc) { *acc += bar(); }
