/* Calls a libSystem function the simulator does not provide. */
char *getenv(const char *name);

int main(void) { return getenv("HOME") != 0; }
