int tunable = 42;
const char *flavour(void) { return "override"; }
int strong_only(void) { return 7; }
