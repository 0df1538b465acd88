extern int total;
extern int calls;
void bump(int by);
int twice(int x);
const char *unit_name(void);
