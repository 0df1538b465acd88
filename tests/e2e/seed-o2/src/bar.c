int bar(void) { return 5; }

void addToBar(int *acc) { *acc += bar(); }
