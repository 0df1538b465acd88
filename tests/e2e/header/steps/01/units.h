#ifndef UNITS_H
#define UNITS_H

/* How many small units make a big one. */
#define SCALE 3

int length_of(int n);
int area_of(int n);

#endif
