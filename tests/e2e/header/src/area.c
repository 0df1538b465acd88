#include "units.h"

int area_of(int n) { return n * SCALE * SCALE; }
