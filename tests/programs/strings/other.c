const char *greeting(void) { return "hello from other.c"; }
const char *farewell(void) { return "apple"; }
