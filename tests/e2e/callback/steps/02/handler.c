/* Grown past its padding: the body moves, the pointers (to its stub) still reach it. */
static volatile int sink;

int handle(int event) {
    for (int i = 0; i < 6; i++) {
        sink += event * i;
        sink ^= 0x33;
        sink -= i;
    }
    sink = 0;
    return 3 + sink;
}
