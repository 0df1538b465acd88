#include "units.h"

int length_of(int n) { return n * SCALE; }
