#include "shared.h"

static const char name[] = "names.c";
const char *unit_name(void) { return name; }
