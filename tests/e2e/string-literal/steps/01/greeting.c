const char *greeting(void) { return "goodbye, moon"; }
