int counter = 100;
int *counter_ptr = &counter;

int step(void) { return ++counter; }
