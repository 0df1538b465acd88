/* bar returns 12: main's assert fires and the program ends abnormally. */
static volatile int sink;

int bar(void) {
    for (int i = 0; i < 8; i++) {
        sink += i;
        sink ^= 0x55;
        sink -= i * 3;
        sink |= 1;
    }
    sink = 0;
    return 12 + sink;
}

void addToBar(int *acc) { *acc += bar(); }
